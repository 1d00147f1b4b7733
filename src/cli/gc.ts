/** `regmirror gc [--dry-run]`: garbage collection of a cache folder, safe while the mirror serves it. */
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../config/units.js';
import { collectGarbage, type GcReport } from '../lifecycle/gc.js';
import { openIndexBeside } from '../lifecycle/lifecycle.js';
import { evictsByFleet, fleetGraceMs, openCoordination, openStorage } from '../main.js';
import { readRedisPassword, readS3Credentials } from '../startup-inputs.js';
import { FilesystemDriver } from '../storage/filesystem.js';
import { formatBytes } from '../web/assets/format.js';

/** Adds `gc` to the program. */
export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('remove expired and over-limit content (storage.maxAge, storage.maxSize), content no repository links to, and leftovers of interrupted downloads; print what went')
    .option('-c, --config <file>', 'configuration file (YAML); default: the embedded one')
    .option('-d, --data <dir>', 'cache folder (storage.path)')
    .option('--dry-run', 'print what would be removed, and remove nothing')
    .option('--grace <duration>', 'spare files and content touched this recently while a mirror serves the folder (on s3: orphans seen this recently, whatever runs)', '10m')
    .action(async (opts: { config?: string; data?: string; dryRun?: boolean; grace: string }) => {
      const graceMs = parseDuration(opts.grace);
      if (graceMs === undefined) program.error(`regmirror gc: --grace "${opts.grace}" is not a duration (e.g. 30s, 10m)`);
      const config = loadConfig(opts.config, { data: opts.data });
      const { maxSize, lowWater, maxAge } = config.storage;
      const { index, server } = await openIndexBeside(config.storage.path);
      const storage = await openStorage(config.storage, readS3Credentials(config.storage));
      // On a fleet the limits are judged by the fleet-wide access record (Redis); its problems are in the report.
      const redis = evictsByFleet(config) ? config.redis! : undefined;
      const coordination = redis && (await openCoordination(redis, await readRedisPassword(redis), pino({ level: 'silent' })));
      try {
        const report = await collectGarbage({
          dataDir: config.storage.path,
          spoolDir: config.storage.spoolPath,
          storage,
          index,
          policy: { maxSize, lowWater, maxAge },
          serverRunning: server !== undefined,
          sharedStorage: config.storage.driver === 's3',
          graceMs,
          dryRun: opts.dryRun ?? false,
          fleet: coordination && { record: coordination.access, graceMs: fleetGraceMs(config) },
        });
        if (server) console.log(`a mirror (pid ${server.pid}) serves ${config.storage.path}: sparing what it touched in the last ${opts.grace}`);
        console.log(renderGcReport(report, opts.dryRun ?? false));
      } finally {
        index.close();
        coordination?.close();
        if (!(storage instanceof FilesystemDriver)) storage.close();
      }
    });
}

const KIND_LABELS = { leftover: 'leftover', orphan: 'orphan', expired: 'expired', evicted: 'over-limit' } as const;

/** One line per removal, then the totals. */
export function renderGcReport(report: GcReport, dryRun: boolean): string {
  const verb = dryRun ? 'would remove' : 'removed';
  const lines = report.removals.map((r) => `${verb} ${KIND_LABELS[r.kind].padEnd(10)} ${formatBytes(r.bytes).padStart(10)}  ${r.what}`);
  if (report.indexAdded + report.indexDropped > 0) {
    lines.push(`access index corrected: ${report.indexAdded} found in storage, ${report.indexDropped} already gone`);
  }
  if (report.orphansLeft) lines.push(`orphans not removed here: ${report.orphansLeft}`);
  if (report.limitsLeft) lines.push(`size and age limits not applied here: ${report.limitsLeft}`);
  const count = report.removals.length;
  lines.push(`${dryRun ? 'gc (dry run)' : 'gc'}: ${verb} ${count} ${count === 1 ? 'item' : 'items'}, ${dryRun ? 'would free' : 'freed'} ${formatBytes(report.bytes)}`);
  return lines.join('\n');
}
