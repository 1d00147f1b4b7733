/**
 * How `regmirror setup` puts a generated file into a host's existing one: pure functions from the
 * file's current text (undefined when there is none) to its new text. An unchanged result is the
 * current text itself, so running setup twice changes nothing the second time.
 */
import { isDeepStrictEqual } from 'node:util';
import { parse as parseToml, stringify as stringifyToml, type TomlTable } from 'smol-toml';
import { parse as parseYaml, parseDocument } from 'yaml';
import { CONTAINERD_REGISTRY_TABLE } from './containerd.js';
import { ClientConfigError } from './mirror.js';
import { tomlString, type MergeRule } from './output.js';

type Json = Record<string, unknown>;

/** Combines `generated` with the current text of the file by the rule; throws ClientConfigError. */
export function mergeFile(rule: MergeRule, current: string | undefined, generated: string, fileName: string): string {
  if (current === undefined || current.trim() === '' || rule === 'replace') return generated;
  switch (rule) {
    case 'docker-daemon-json':
      return mergeDaemonJson(current, generated, fileName);
    case 'k3s-registries-yaml':
      return mergeRegistriesYaml(current, generated, fileName);
    case 'buildkitd-toml':
      return mergeBuildkitdToml(current, generated, fileName);
    case 'containerd-config-toml':
      return mergeContainerdConfig(current, generated, fileName);
  }
}

/** Equal as data: parsers differ in prototypes (smol-toml's tables have none), which must not count. */
const sameData = (a: unknown, b: unknown): boolean => isDeepStrictEqual(JSON.parse(JSON.stringify(a ?? null)), JSON.parse(JSON.stringify(b ?? null)));

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every [path, value] of an object whose value is not itself an object (arrays are values). */
function leaves(value: Json, prefix: string[] = []): [string[], unknown][] {
  return Object.entries(value).flatMap(([key, child]) => (isObject(child) ? leaves(child, [...prefix, key]) : [[[...prefix, key], child] as [string[], unknown]]));
}

function getIn(value: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), value);
}

function readToml(text: string, fileName: string): TomlTable {
  try {
    return parseToml(text);
  } catch (err) {
    throw new ClientConfigError(`${fileName} is not valid TOML (${(err as Error).message.split('\n')[0]}): fix it, then run setup again`);
  }
}

/** daemon.json: our registry-mirrors replace the old ones, insecure-registries are joined. */
function mergeDaemonJson(current: string, generated: string, fileName: string): string {
  let daemon: unknown;
  try {
    daemon = JSON.parse(current);
  } catch (err) {
    throw new ClientConfigError(`${fileName} is not valid JSON (${(err as Error).message}): fix it, then run setup again`);
  }
  if (!isObject(daemon)) throw new ClientConfigError(`${fileName} does not hold a JSON object`);
  const ours = JSON.parse(generated) as Record<string, string[]>;
  const next: Json = { ...daemon, 'registry-mirrors': ours['registry-mirrors'] };
  const insecure = ours['insecure-registries'];
  if (insecure) {
    const old = Array.isArray(daemon['insecure-registries']) ? (daemon['insecure-registries'] as unknown[]) : [];
    next['insecure-registries'] = [...new Set([...old, ...insecure])];
  }
  return sameData(next, daemon) ? current : `${JSON.stringify(next, null, 2)}\n`;
}

/** registries.yaml: each of our leaves (endpoint lists, tls settings) is set; comments stay. */
function mergeRegistriesYaml(current: string, generated: string, fileName: string): string {
  const doc = parseDocument(current);
  if (doc.errors.length > 0) throw new ClientConfigError(`${fileName} is not valid YAML (${doc.errors[0]!.message.split('\n')[0]}): fix it, then run setup again`);
  const before: unknown = doc.toJS();
  if (before !== null && before !== undefined && !isObject(before)) throw new ClientConfigError(`${fileName} does not hold a YAML mapping`);
  let changed = false;
  for (const [path, value] of leaves(parseYaml(generated) as Json)) {
    if (sameData(getIn(before, path), value)) continue;
    doc.setIn(path, doc.createNode(value));
    changed = true;
  }
  return changed ? doc.toString() : current;
}

/**
 * buildkitd.toml: our `[registry."..."]` tables are appended when the file has none of them (its
 * comments stay); otherwise merged key by key and the file is rewritten (comments are lost, the
 * backup keeps them).
 */
function mergeBuildkitdToml(current: string, generated: string, fileName: string): string {
  const config = readToml(current, fileName);
  const ours = (readToml(generated, 'generated buildkitd.toml').registry ?? {}) as Record<string, TomlTable>;
  const registries = config.registry ?? {};
  if (!isObject(registries)) throw new ClientConfigError(`${fileName}: registry is not a table`);
  if (!Object.keys(ours).some((name) => name in registries)) {
    const appended = `${current.replace(/\n*$/, '\n')}\n${generated}`;
    readToml(appended, `${fileName} with regmirror's tables`);
    return appended;
  }
  const merged: Json = { ...registries };
  for (const [name, table] of Object.entries(ours)) merged[name] = { ...(isObject(registries[name]) ? registries[name] : {}), ...table };
  if (sameData(merged, registries)) return current;
  const next = { ...config, registry: merged } as TomlTable;
  return `# Rewritten by \`regmirror setup buildkit\`; the previous file, comments included, is in its backup.\n${stringifyToml(next)}\n`;
}

/** A TOML table header's key path (`[plugins."io.containerd.grpc.v1.cri".registry]`), if the line is one. */
export function tomlHeaderPath(line: string): string[] | undefined {
  const header = /^\s*\[(?!\[)(.*)\]\s*(?:#.*)?$/.exec(line);
  if (!header) return undefined;
  const keys: string[] = [];
  const part = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(\.|$)/y;
  const text = header[1]!;
  while (part.lastIndex < text.length) {
    const m = part.exec(text);
    if (!m) return undefined;
    keys.push(m[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : (m[2] ?? m[3]!));
    if (m[4] === '') break;
  }
  return keys;
}

function tomlKeyPath(path: readonly string[]): string {
  return path.map((key) => (/^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key))).join('.');
}

/**
 * Sets `key = value` in the table at `table` by editing lines, so the rest of the file (comments
 * included) is kept: the key's line is replaced, or added under the table's header, or the table is
 * appended.
 */
export function setTomlKey(text: string, table: readonly string[], key: string, valueToml: string): string {
  const lines = text.split('\n');
  const at = lines.findIndex((line) => isDeepStrictEqual(tomlHeaderPath(line), [...table]));
  if (at === -1) return `${text.replace(/\n*$/, '\n')}\n[${tomlKeyPath(table)}]\n  ${key} = ${valueToml}\n`;
  let end = lines.findIndex((line, i) => i > at && /^\s*\[/.test(line));
  if (end === -1) end = lines.length;
  const keyLine = new RegExp(`^(\\s*)(?:${key}|"${key}")\\s*=`);
  for (let i = at + 1; i < end; i++) {
    const m = keyLine.exec(lines[i]!);
    if (m) {
      lines[i] = `${m[1]}${key} = ${valueToml}`;
      return lines.join('\n');
    }
  }
  lines.splice(at + 1, 0, `  ${key} = ${valueToml}`);
  return lines.join('\n');
}

/** containerd config.toml: sets the CRI registry's config_path, in the table the file's version uses. */
function mergeContainerdConfig(current: string, generated: string, fileName: string): string {
  const certsDir = getIn(readToml(generated, 'generated config.toml'), [...CONTAINERD_REGISTRY_TABLE[2], 'config_path']) as string;
  const config = readToml(current, fileName);
  const version = config.version ?? 1;
  const table = CONTAINERD_REGISTRY_TABLE[version as 1 | 2 | 3];
  if (!table) throw new ClientConfigError(`${fileName}: unknown config version ${String(version)}`);
  const registry = getIn(config, table);
  if (isObject(registry)) {
    if (registry.config_path === certsDir) return current;
    if (isObject(registry.mirrors) && Object.keys(registry.mirrors).length > 0) {
      throw new ClientConfigError(
        `${fileName} sets [${tomlKeyPath([...table, 'mirrors'])}], which containerd refuses beside config_path: move those mirrors to hosts.toml files, then run setup again`,
      );
    }
  }
  const edited = setTomlKey(current, table, 'config_path', tomlString(certsDir));
  let check: unknown;
  try {
    check = getIn(parseToml(edited), [...table, 'config_path']);
  } catch {
    check = undefined;
  }
  if (check !== certsDir) {
    throw new ClientConfigError(`cannot edit ${fileName} safely: add config_path = ${tomlString(certsDir)} to [${tomlKeyPath(table)}] by hand`);
  }
  return edited;
}
