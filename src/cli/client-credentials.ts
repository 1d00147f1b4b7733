/**
 * The mirror user `regmirror config|setup` writes into client files: from `--username` and
 * `--password-file` (`-` for stdin), or REGMIRROR_USERNAME and REGMIRROR_PASSWORD — never a password
 * flag, which `ps` would show. Checked against `access.htpasswd` when that file is readable here, so
 * a typo fails now instead of as 401s that clients answer by silently skipping the mirror.
 */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { pino } from 'pino';
import { basicToken, type ClientCredentials } from '../clients/index.js';
import { ConfigError } from '../config/load.js';
import { HtpasswdAuth } from '../http/client-auth.js';

/** The flags that carry credentials. */
export interface CredentialOptions {
  username?: string;
  passwordFile?: string;
}

/** Reads the password file (or stdin for `-`); one final line break is not part of the password. */
async function readPassword(file: string): Promise<string> {
  try {
    const content = file === '-' ? await text(process.stdin) : await readFile(file, 'utf8');
    return content.replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(`regmirror: --password-file: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The credentials the flags or the environment give; undefined when neither gives any. */
export async function readClientCredentials(opts: CredentialOptions, env: NodeJS.ProcessEnv = process.env): Promise<ClientCredentials | undefined> {
  const username = opts.username ?? env.REGMIRROR_USERNAME;
  const password = opts.passwordFile !== undefined ? await readPassword(opts.passwordFile) : env.REGMIRROR_PASSWORD;
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined) throw new ConfigError('regmirror: a password without a user: pass --username USER (or set REGMIRROR_USERNAME)');
  if (password === undefined) throw new ConfigError(`regmirror: --username ${username} needs a password: --password-file FILE (- for stdin), or REGMIRROR_PASSWORD`);
  if (username === '' || username.includes(':')) throw new ConfigError(`regmirror: --username "${username}": a user name is not empty and has no colon`);
  if (password === '') throw new ConfigError('regmirror: the password is empty');
  return { username, password };
}

/** Throws when the htpasswd file is readable and does not accept the credentials. */
export async function checkAgainstHtpasswd(credentials: ClientCredentials, htpasswd: string): Promise<void> {
  let auth: HtpasswdAuth;
  try {
    auth = new HtpasswdAuth(htpasswd, 'regmirror', pino({ level: 'silent' }));
  } catch {
    return; // Not on the mirror's host (or not allowed to read it): the clients will tell.
  }
  try {
    if ((await auth.authenticate(`Basic ${basicToken(credentials)}`)) === undefined) {
      throw new ConfigError(`regmirror: ${htpasswd} (access.htpasswd) does not accept this password for ${credentials.username}`);
    }
  } finally {
    auth.close();
  }
}
