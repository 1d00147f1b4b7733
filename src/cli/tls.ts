/** `regmirror tls init`: a local CA and a server certificate, and how clients trust it. */
import { InvalidArgumentError, type Command } from 'commander';
import type { LocalCaResult } from '../tls/init.js';
import { trustInstructions } from '../tls/trust.js';

/** Options of `tls init`. */
export interface TlsInitOptions {
  dir: string;
  port: number;
  days: number;
  newCa?: boolean;
}

const wholeNumber = (what: string, max: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}`);
  return n;
};

/** Adds `tls` and its sub-commands to the program. */
export function registerTls(program: Command): void {
  const tls = program.command('tls').description('HTTPS for the listeners: a local CA (see docs/tls.md)');
  tls
    .command('init')
    .description('create a local CA (kept when the folder has one) and a server certificate for the names and IPs clients use')
    .argument('<names...>', 'DNS names and IP addresses of the mirror, e.g. mirror.lan 10.0.0.5')
    .option('--dir <dir>', 'folder for ca.crt, ca.key, server.crt, server.key', './tls')
    .option('--port <port>', 'the listener port clients use (for the printed instructions)', wholeNumber('--port', 65535), 5000)
    .option('--days <days>', 'validity of the server certificate in days', wholeNumber('--days', 3650), 397)
    .option('--new-ca', 'make a new CA even if the folder has one (clients must trust it again)')
    .action(async (names: string[], opts: TlsInitOptions, command: Command) => {
      // Loaded here, not when the program starts: the X.509 library adds ~6 MB to the RSS of
      // every `regmirror serve`, which never uses it (a proxy loads it when it is configured).
      const { checkName, initLocalCa } = await import('../tls/init.js');
      const bad = names.map(checkName).filter((message) => message !== undefined);
      if (bad.length) command.error(`error: ${bad.join('; ')}`, { exitCode: 2 });
      const result = await initLocalCa({ dir: opts.dir, names, serverDays: opts.days, newCa: opts.newCa ?? false });
      process.stdout.write(tlsInitReport(result, opts.port));
    });
}

/** What `tls init` prints: the files, the listener settings, and how each client trusts the CA. */
export function tlsInitReport(result: LocalCaResult, port: number): string {
  const { files } = result;
  const hosts = result.names.map((name) => `${name.includes(':') ? `[${name}]` : name}:${port}`);
  return [
    result.createdCa ? `Created a new local CA:       ${files.caCert}` : `Used the existing local CA:   ${files.caCert}`,
    `  its key (keep it private):  ${files.caKey}`,
    `Server certificate:           ${files.cert}`,
    `  its key:                    ${files.key}`,
    `  for ${result.names.join(', ')}; valid until ${result.validTo.toISOString().slice(0, 10)}`,
    '',
    'Listener settings (a running listener picks up a new certificate by itself):',
    '',
    'listeners:',
    `  - address: 0.0.0.0:${port}`,
    '    tls:',
    `      cert: ${files.cert}`,
    `      key: ${files.key}`,
    `      ca: ${files.caCert}   # regmirror config tells clients to trust it`,
    '',
    trustInstructions(files.caCert, hosts),
  ].join('\n');
}
