/**
 * `tls init`: a local CA and a server certificate in one folder. An existing CA in the folder is
 * kept (clients that trust it go on trusting the new server certificate); the server certificate
 * and key are replaced atomically, so a running listener reloads them.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { writeFileAtomically } from './atomic-write.js';
import { createCa, issueServerCertificate, type IssuedCertificate } from './ca.js';

/** What to create. */
export interface LocalCaOptions {
  /** Folder for ca.crt, ca.key, server.crt, server.key. */
  dir: string;
  /** DNS names and IP addresses the clients use to reach the mirror. */
  names: string[];
  /** Validity of the server certificate (default 397 days). */
  serverDays?: number;
  /** Validity of a new CA (default 10 years). */
  caDays?: number;
  /** Make a new CA even when the folder has one. */
  newCa?: boolean;
}

/** The absolute paths of the files `tls init` writes. */
export interface LocalCaFiles {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

/** What was written. */
export interface LocalCaResult {
  files: LocalCaFiles;
  /** False when the folder's existing CA signed the new certificate. */
  createdCa: boolean;
  names: string[];
  validTo: Date;
}

/** The file names inside the folder. */
export function localCaFiles(dir: string): LocalCaFiles {
  const abs = resolve(dir);
  return { caCert: join(abs, 'ca.crt'), caKey: join(abs, 'ca.key'), cert: join(abs, 'server.crt'), key: join(abs, 'server.key') };
}

const NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Checks a name for a certificate: a DNS name (optionally `*.`-wildcard) or an IP address. */
export function checkName(name: string): string | undefined {
  if (isIP(name) || NAME.test(name)) return undefined;
  return `"${name}" is neither a DNS name nor an IP address`;
}

/** Creates (or reuses) the CA and issues the server certificate. */
export async function initLocalCa(options: LocalCaOptions): Promise<LocalCaResult> {
  const names = [...new Set(options.names.map((n) => n.replace(/^\[(.*)\]$/, '$1')))];
  if (names.length === 0) throw new Error('give at least one name or IP address clients use to reach the mirror');
  const bad = names.map(checkName).filter((m) => m !== undefined);
  if (bad.length) throw new Error(bad.join('\n'));

  const files = localCaFiles(options.dir);
  await mkdir(resolve(options.dir), { recursive: true, mode: 0o755 });
  let ca = options.newCa ? undefined : await readCa(files);
  const createdCa = ca === undefined;
  if (!ca) {
    ca = await createCa({ commonName: `regmirror local CA ${new Date().toISOString().slice(0, 10)}`, days: options.caDays ?? 3650 });
    await writeFileAtomically(files.caKey, ca.key, 0o600);
    await writeFileAtomically(files.caCert, ca.cert, 0o644);
  }
  const server = await issueServerCertificate(ca, { names, days: options.serverDays ?? 397 });
  // Key first: a listener that reloads between the two writes sees a mismatch and keeps the old pair.
  await writeFileAtomically(files.key, server.key, 0o600);
  await writeFileAtomically(files.cert, server.cert, 0o644);
  return { files, createdCa, names, validTo: new Date(new X509Certificate(server.cert).validTo) };
}

async function readCa(files: LocalCaFiles): Promise<IssuedCertificate | undefined> {
  const [cert, key] = await Promise.all([readFile(files.caCert, 'utf8').catch(() => undefined), readFile(files.caKey, 'utf8').catch(() => undefined)]);
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new Error(`${cert === undefined ? files.caCert : files.caKey} is missing but its partner exists: restore it, or pass --new-ca`);
  }
  return { cert, key };
}
