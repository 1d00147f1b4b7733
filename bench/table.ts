/**
 * Prints a results file's tables as Markdown, for docs/performance.md, without the comparison with
 * the run before it: `node --import tsx bench/table.ts [bench/results/latest.json]`.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { formatColumnTable, formatTable, type ResultsFile } from './report.js';
import { runScript } from './script.js';

async function main(): Promise<void> {
  const path = process.argv[2] ?? fileURLToPath(new URL('./results/latest.json', import.meta.url));
  const results = JSON.parse(await readFile(path, 'utf8')) as ResultsFile;
  const m = results.meta;
  console.log(`${String(m.date).slice(0, 16).replace('T', ' ')} UTC, ${m.commit ? `commit ${m.commit}` : m.regmirror}${m.nodeFlags ? ` (node ${m.nodeFlags})` : ''}, ${m.cpus} × ${m.cpuModel}, node ${m.node}, ${m.runSeconds} s\n`);
  if (results.rows.length) console.log(formatTable(results.rows.map((r) => ({ ...r, previous: undefined })), true));
  if (results.s3) console.log(`\nS3 column:\n\n${formatColumnTable(results.s3, true)}`);
  for (const note of results.notes) console.log(`\nnote: ${note}`);
}

runScript(main);
