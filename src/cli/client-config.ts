/**
 * `regmirror config <client>` prints or writes a client's configuration for this mirror;
 * `regmirror setup <client>` applies it to this host (a diff by default, `--apply` to write, with
 * backups). The generators in src/clients/ are pure; every file read and write happens here.
 */
import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Argument, type Command } from 'commander';
import { createTwoFilesPatch } from 'diff';
import {
  CLIENT_NAMES, ClientConfigError, describeMirror, describeProxy, generateClientConfig, mergeFile, takesUrlOnly, type ClientConfig, type ClientFile, type ClientName,
} from '../clients/index.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkAgainstHtpasswd, readClientCredentials, type CredentialOptions } from './client-credentials.js';

/** Where the commands print: the process's streams, or a test's buffers. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: CommandOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

interface CommonOptions extends CredentialOptions {
  config?: string;
  url?: string;
  ca?: string;
  wildcard?: boolean;
  /** `--proxy` (true) or `--proxy URL`. */
  proxy?: string | boolean;
}

function addCommonOptions(command: Command): Command {
  return command
    .addArgument(new Argument('<client>', 'the client to configure').choices(CLIENT_NAMES))
    .option('-c, --config <file>', "regmirror's configuration file (YAML); default: the embedded one")
    .option('--url <url>', 'the URL clients use for the mirror (default: the first unpinned listener, https when it has tls; 0.0.0.0 and :: become this host\'s name)')
    .option('--ca <file>', 'CA certificate clients should trust: for the mirror\'s https URL and listeners (default: each listener\'s tls.ca); with --proxy, the CA of the proxy\'s certificates (default: proxy.caCert)')
    .option('--wildcard', 'containerd, k3s, rke2: send every other registry to the mirror first too (_default, "*")')
    .option('--proxy [url]', 'docker, containerd, podman, cri-o: reach every registry through regmirror\'s proxy (HTTPS_PROXY) instead of a mirror; url default: proxy.listen')
    .option('--username <user>', 'the mirror user (access.htpasswd) clients log in as; default: REGMIRROR_USERNAME')
    .option('--password-file <file>', 'a file holding that user\'s password (- for stdin); default: REGMIRROR_PASSWORD');
}

/** Loads the configuration and generates the client's files; client errors become ConfigErrors. */
async function generate(client: ClientName, opts: CommonOptions, configDir?: string): Promise<ClientConfig> {
  const config = loadConfig(opts.config);
  const credentials = await readClientCredentials(opts);
  if (credentials && config.access.htpasswd !== undefined) await checkAgainstHtpasswd(credentials, config.access.htpasswd);
  try {
    const proxying = opts.proxy !== undefined && opts.proxy !== false;
    // With --proxy, --ca is the CA of the proxy's certificates, not of the mirror's listener.
    const mirror = describeMirror(config, { url: opts.url, caFile: proxying ? undefined : opts.ca, urlOnly: takesUrlOnly(client), hostname: hostname() });
    const proxy = proxying ? describeProxy(config, mirror, { url: typeof opts.proxy === 'string' ? opts.proxy : undefined, caFile: opts.ca, hostname: hostname() }) : undefined;
    // Clients resolve a relative CA path against their own folders: give them an absolute one.
    for (const endpoint of [mirror, ...mirror.listeners]) if (endpoint.caFile !== undefined) endpoint.caFile = resolve(endpoint.caFile);
    if (proxy) proxy.caFile = resolve(proxy.caFile);
    return generateClientConfig(client, mirror, { configDir, wildcard: opts.wildcard, proxy, credentials });
  } catch (err) {
    throw err instanceof ClientConfigError ? new ConfigError(`regmirror: ${err.message}`) : err;
  }
}

/** The text a file should hold: the generated text, or the content of the file it copies. */
async function fileText(file: ClientFile): Promise<string> {
  if (file.kind === 'text') return file.content;
  try {
    return await readFile(file.from, 'utf8');
  } catch (err) {
    throw new ConfigError(`regmirror: cannot read ${file.from}: ${(err as Error).message}`);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`regmirror: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Prints what the operator does next and should know, as comments. */
function printGuidance(output: CommandOutput, generated: ClientConfig, reload: boolean): void {
  if (reload) for (const command of generated.reload) output.err(`# then: ${command}\n`);
  for (const note of generated.notes) output.err(`# note: ${note}\n`);
}

/** Adds `config` to the program. */
export function registerClientConfig(program: Command, output: CommandOutput = processOutput): void {
  addCommonOptions(program.command('config'))
    .description("print a client's configuration for this mirror (containerd, podman, cri-o, buildkit, docker, k3s, rke2)")
    .option('-w, --write <dir>', "write the files under <dir> (laid out as in the client's folder) instead of printing them")
    .action(async (client: ClientName, opts: CommonOptions & { write?: string }) => {
      if (opts.write !== undefined) {
        const dir = resolve(opts.write);
        const generated = await generate(client, opts, dir);
        for (const file of generated.files) {
          const target = join(dir, file.path);
          await mkdir(dirname(target), { recursive: true });
          await writeFile(target, await fileText(file), { mode: file.secret ? 0o600 : 0o666 });
          if (file.secret) await chmod(target, 0o600); // mode applies only to a new file
          output.out(`${target}\n`);
        }
        printGuidance(output, generated, true);
        return;
      }
      const generated = await generate(client, opts);
      const headers = generated.files.length > 1;
      for (const file of generated.files) {
        const where = join(generated.configDir, file.path);
        if (file.kind === 'copy') output.out(`# ==> ${where}: a copy of ${file.from}\n`);
        else output.out(`${headers ? `# ==> ${where}\n` : ''}${file.content}${headers ? '\n' : ''}`);
      }
      if (!headers) output.err(`# goes to ${join(generated.configDir, generated.files[0]!.path)}\n`);
      printGuidance(output, generated, true);
    });
}

/** One file setup would change. */
interface Change {
  /** Where it is written: under --root. */
  target: string;
  /** Where the client sees it. */
  shown: string;
  current?: string;
  next: string;
  needsReload: boolean;
  secret: boolean;
}

/** What setup would change; files already as they should be are left out. */
async function planChanges(generated: ClientConfig, root: string): Promise<Change[]> {
  const changes: Change[] = [];
  for (const file of generated.files) {
    const shown = join(generated.configDir, file.path);
    const target = join(root, shown);
    const current = await readIfExists(target);
    const wanted = await fileText(file);
    let next: string;
    try {
      next = file.kind === 'text' ? mergeFile(file.merge, current, wanted, shown) : wanted;
    } catch (err) {
      throw err instanceof ClientConfigError ? new ConfigError(`regmirror: ${err.message}`) : err;
    }
    if (next !== current) changes.push({ target, shown, ...(current !== undefined ? { current } : {}), next, needsReload: file.needsReload, secret: file.secret === true });
  }
  return changes;
}

/** `20250102T030405Z`: a backup suffix that sorts by time and ends in no extension a client reads. */
function backupStamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Copies the current file aside, never over an older backup; returns the backup's path. */
async function backup(target: string, stamp: string): Promise<string> {
  for (let n = 0; ; n++) {
    const path = `${target}.regmirror-backup-${stamp}${n ? `-${n}` : ''}`;
    try {
      await copyFile(target, path, constants.COPYFILE_EXCL);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * Writes a change: backup first, then the new text beside the file, renamed over it. A file with
 * credentials, and its backup, are made 0600 whatever the old file's mode.
 */
async function applyChange(change: Change, stamp: string): Promise<string | undefined> {
  await mkdir(dirname(change.target), { recursive: true });
  const saved = change.current !== undefined ? await backup(change.target, stamp) : undefined;
  if (saved && change.secret) await chmod(saved, 0o600);
  const mode = change.secret ? 0o600 : ((await stat(change.target).catch(() => undefined))?.mode ?? 0o644);
  const temp = `${change.target}.regmirror-tmp`;
  await rm(temp, { force: true }); // a leftover would keep its own mode
  await writeFile(temp, change.next, { mode: mode & 0o7777 });
  await rename(temp, change.target);
  return saved;
}

/** Adds `setup` to the program. */
export function registerSetup(program: Command, output: CommandOutput = processOutput): void {
  addCommonOptions(program.command('setup'))
    .description("apply a client's configuration for this mirror to this host: shows the change; --apply writes it, with backups")
    .option('--apply', 'write the files (each replaced file is kept as <file>.regmirror-backup-<time>)')
    .option('--root <dir>', 'treat <dir> as the filesystem root: for tests and images', '/')
    .action(async (client: ClientName, opts: CommonOptions & { apply?: boolean; root: string }) => {
      const generated = await generate(client, opts);
      const changes = await planChanges(generated, resolve(opts.root));
      if (changes.length === 0) {
        output.out(`${client} is already set up for this mirror: nothing to change.\n`);
        return;
      }
      if (!opts.apply) {
        for (const change of changes) {
          const patch = createTwoFilesPatch(change.current === undefined ? '/dev/null' : `a${change.shown}`, `b${change.shown}`, change.current ?? '', change.next);
          output.out(patch.replace(/^=+\n/, '')); // jsdiff's separator line: not part of a unified diff
        }
        output.err(`# ${changes.length} file(s) would change: run again with --apply to write them (backups are kept).\n`);
        printGuidance(output, generated, false);
        return;
      }
      const stamp = backupStamp(new Date());
      for (const change of changes) {
        let saved: string | undefined;
        try {
          saved = await applyChange(change, stamp);
        } catch (err) {
          throw new ConfigError(`regmirror: cannot write ${change.target}: ${(err as Error).message}`);
        }
        output.out(saved ? `updated ${change.target} (backup: ${saved})\n` : `created ${change.target}\n`);
      }
      const reload = changes.some((c) => c.needsReload) && generated.reload.length > 0;
      if (reload) for (const command of generated.reload) output.out(`reload: ${command}\n`);
      else output.out(`nothing to reload: ${client} reads these files at every pull.\n`);
      printGuidance(output, generated, false);
    });
}
