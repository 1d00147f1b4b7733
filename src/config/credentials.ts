/** Turns an upstream's credential settings into a username and password, reading env and files. */
import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from './schema.js';
import { ConfigError } from './error.js';

/** A username and password for a registry: an upstream's, or a user of the mirror. */
export interface Credentials {
  username: string;
  password: string;
}

/** base64 of `user:password`: the Basic `Authorization` token, and the `auth` of a docker/containers auth file. */
export function basicToken(credentials: Credentials): string {
  return Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
}

/** Resolves credentials from literal values, environment variables or a file; undefined when none are set. */
export function resolveCredentials(
  upstreamName: string,
  settings: UpstreamConfig['credentials'],
  env: NodeJS.ProcessEnv = process.env,
): Credentials | undefined {
  if (!settings) return undefined;
  const username = settings.username ?? fromEnv(settings.usernameEnv, env, upstreamName);
  let password = settings.password ?? fromEnv(settings.passwordEnv, env, upstreamName);
  if (password === undefined && settings.passwordFile !== undefined) {
    try {
      password = readFileSync(settings.passwordFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`config error at upstreams["${upstreamName}"].credentials.passwordFile: ${(err as Error).message}`);
    }
  }
  if (username === undefined && password === undefined) return undefined;
  if (username === undefined || password === undefined) {
    throw new ConfigError(`config error at upstreams["${upstreamName}"].credentials: both a username and a password are needed`);
  }
  return { username, password };
}

function fromEnv(name: string | undefined, env: NodeJS.ProcessEnv, upstreamName: string): string | undefined {
  if (name === undefined) return undefined;
  const value = env[name];
  if (value === undefined) {
    throw new ConfigError(`config error at upstreams["${upstreamName}"].credentials: environment variable ${name} is not set`);
  }
  return value;
}
