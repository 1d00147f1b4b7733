/**
 * Which mirror process serves a cache folder: `serve` writes `_index/serving.json` at start and
 * removes it at close. `gc` reads it to know whether spool and staging files may belong to a live
 * download, and `warm` (without --mirror) to refuse to fill a folder that a mirror is serving.
 */
import { hostname } from 'node:os';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What the mark says. */
export interface ServerMark {
  pid: number;
  host: string;
  startedAt: number;
}

/** The mark's path in the index folder. */
export function serverMarkPath(indexDir: string): string {
  return join(indexDir, 'serving.json');
}

/** Writes the mark for this process; the returned function removes it (if still ours). */
export async function markServing(indexDir: string): Promise<() => Promise<void>> {
  const path = serverMarkPath(indexDir);
  const mark: ServerMark = { pid: process.pid, host: hostname(), startedAt: Date.now() };
  await writeFile(path, JSON.stringify(mark));
  return async () => {
    const current = await readMark(path);
    if (current?.pid === mark.pid && current.startedAt === mark.startedAt) await rm(path, { force: true });
  };
}

/**
 * The mirror serving the folder, if one is alive. A mark written on another host counts as alive
 * (its process cannot be checked from here); one whose process is gone (killed) does not.
 */
export async function liveServer(indexDir: string): Promise<ServerMark | undefined> {
  const mark = await readMark(serverMarkPath(indexDir));
  if (!mark) return undefined;
  if (mark.host !== hostname()) return mark;
  try {
    process.kill(mark.pid, 0);
    return mark;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? mark : undefined;
  }
}

async function readMark(path: string): Promise<ServerMark | undefined> {
  try {
    const mark = JSON.parse(await readFile(path, 'utf8')) as Partial<ServerMark>;
    if (typeof mark.pid !== 'number' || typeof mark.host !== 'string' || typeof mark.startedAt !== 'number') return undefined;
    return mark as ServerMark;
  } catch {
    return undefined;
  }
}
