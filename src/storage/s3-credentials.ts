/** Turns the S3 credential settings (`storage.credentials`) into keys, reading env and files. */
import { readFileSync } from 'node:fs';

/** The settings as written: literal values, or the names of variables or a file holding them. */
export interface S3CredentialSettings {
  accessKeyId?: string | undefined;
  accessKeyIdEnv?: string | undefined;
  secretAccessKey?: string | undefined;
  secretAccessKeyEnv?: string | undefined;
  secretAccessKeyFile?: string | undefined;
}

/** Static S3 keys. */
export interface S3Keys {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Static S3 keys, or undefined when none are set (the AWS SDK's default chain applies then). */
export function resolveS3Credentials(
  settings: S3CredentialSettings | undefined,
  env: NodeJS.ProcessEnv = process.env,
): S3Keys | undefined {
  if (!settings) return undefined;
  const fail = (message: string): never => {
    throw new Error(`config error at storage.credentials: ${message}`);
  };
  const fromEnv = (name: string | undefined): string | undefined => (name === undefined ? undefined : env[name] ?? fail(`environment variable ${name} is not set`));
  const accessKeyId = settings.accessKeyId ?? fromEnv(settings.accessKeyIdEnv);
  let secretAccessKey = settings.secretAccessKey ?? fromEnv(settings.secretAccessKeyEnv);
  if (secretAccessKey === undefined && settings.secretAccessKeyFile !== undefined) {
    try {
      secretAccessKey = readFileSync(settings.secretAccessKeyFile, 'utf8').trim();
    } catch (err) {
      fail(`secretAccessKeyFile: ${(err as Error).message}`);
    }
  }
  if (accessKeyId === undefined && secretAccessKey === undefined) return undefined;
  if (accessKeyId === undefined || secretAccessKey === undefined) return fail('both an access key id and a secret access key are needed');
  return { accessKeyId, secretAccessKey };
}
