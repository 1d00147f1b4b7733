/** `regmirror ls [--upstream X]`: the cached repositories and tags, with size, last pull and pulls. */
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { openIndexBeside } from '../lifecycle/lifecycle.js';
import { listCache, type TagListing } from '../lifecycle/listing.js';
import { openStorage } from '../main.js';
import { readS3Credentials } from '../startup-inputs.js';
import { FilesystemDriver } from '../storage/filesystem.js';
import { formatAgo, formatBytes } from '../web/assets/format.js';
import { table } from './stats.js';

/** Adds `ls` to the program. */
export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list the cached repositories and tags with the bytes cached, when each was last pulled and how often')
    .option('-c, --config <file>', 'configuration file (YAML); default: the embedded one')
    .option('-d, --data <dir>', 'cache folder (storage.path)')
    .option('-u, --upstream <name>', 'only this upstream (e.g. docker.io)')
    .option('--json', 'print JSON: one object per tag')
    .action(async (opts: { config?: string; data?: string; upstream?: string; json?: boolean }) => {
      const config = loadConfig(opts.config, { data: opts.data });
      const { index } = await openIndexBeside(config.storage.path);
      const storage = await openStorage(config.storage, readS3Credentials(config.storage));
      try {
        const listings = await listCache(storage, index, { upstream: opts.upstream });
        console.log(opts.json ? JSON.stringify(listings, null, 2) : renderListing(listings, Date.now(), index.usage()));
      } finally {
        index.close();
        if (!(storage instanceof FilesystemDriver)) storage.close();
      }
    });
}

/** The listing as a table, one row per tag, and what the whole cache holds. */
export function renderListing(listings: readonly TagListing[], now: number, usage: { bytes: number; objects: number }): string {
  if (listings.length === 0) return 'nothing cached yet';
  const rows = [['UPSTREAM', 'REPOSITORY', 'TAG', 'SIZE', 'CACHED', 'LAST PULLED', 'PULLS']];
  for (const l of listings) {
    rows.push([l.upstream, l.repository, l.tag, formatBytes(l.bytes), l.cached, formatAgo(l.lastPulled, now), String(l.pulls)]);
  }
  const repositories = new Set(listings.map((l) => `${l.upstream}/${l.repository}`)).size;
  const holds = `the cache holds ${formatBytes(usage.bytes)} in ${usage.objects} objects (content shared by tags is stored once)`;
  return `${table(rows, [false, false, false, true, false, false, true])}\n${listings.length} tags in ${repositories} repositories; ${holds}`;
}
