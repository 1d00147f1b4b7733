/**
 * Results: samples per metric and server, rows of medians (or peaks) with ratios and targets,
 * the printed table and bench/results/latest.json (the previous one kept as previous.json, and
 * compared with in the table's last column).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** The columns measured: regmirror, its peer (Distribution proxy) and the limit (nginx, or the upstream directly). */
export type Column = 'regmirror' | 'distribution' | 'limit';

/** Samples of every metric, by row id and column. */
export class Samples<C extends string = Column> {
  private readonly byRow = new Map<string, Partial<Record<C, number[]>>>();

  add(id: string, column: C, value: number | undefined): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const row: Partial<Record<C, number[]>> = this.byRow.get(id) ?? {};
    (row[column] ??= []).push(value);
    this.byRow.set(id, row);
  }

  of(id: string): Partial<Record<C, number[]>> {
    return this.byRow.get(id) ?? {};
  }
}

/** A target and whether this run met it (undefined: not measured). */
export interface Target {
  text: string;
  pass: boolean | undefined;
}

/** One line of the table. */
export interface Row {
  /** Stable key, to compare runs. */
  id: string;
  workload: string;
  metric: string;
  unit: string;
  /** What the limit column holds for this row. */
  limitName?: 'nginx' | 'direct';
  regmirror?: number | undefined;
  distribution?: number | undefined;
  limit?: number | undefined;
  /** regmirror / distribution and regmirror / limit: medians of the per-round ratios (see roundRatio). */
  vsPeer?: number | undefined;
  vsLimit?: number | undefined;
  targets: Target[];
  samples: Partial<Record<Column, number[]>>;
  /** regmirror's value in the previous run, when it had this row. */
  previous?: number | undefined;
}

/** How a row is built from its samples. */
export interface RowSpec {
  id: string;
  workload: string;
  metric: string;
  unit: string;
  limitName?: 'nginx' | 'direct';
  /** median (default) over rounds, or the largest sample (peaks). */
  aggregate?: 'median' | 'max';
  /** Derives the targets once every row's values are known. */
  targets?: (row: Row, rows: ReadonlyMap<string, Row>) => Target[];
}

export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A column's value in a row: the median of its samples, or the largest for peaks. */
function aggregate(values: number[] | undefined, how: RowSpec['aggregate']): number | undefined {
  if (!values?.length) return undefined;
  return how === 'max' ? Math.max(...values) : median(values);
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;

/**
 * mine / theirs: the median of the per-round ratios when both were measured every round (the two
 * runs of a round are seconds apart, so they share the machine's mood), else the ratio of the
 * aggregates (peaks, single values).
 */
function roundRatio(mine: number[] = [], theirs: number[] = [], how: RowSpec['aggregate']): number | undefined {
  if (how === 'max' || mine.length < 2 || mine.length !== theirs.length) return ratio(aggregate(mine, how), aggregate(theirs, how));
  return median(mine.map((v, i) => v / theirs[i]!));
}

/** A target on a ratio of this row: `against` column, `op`, threshold. */
export function ratioTarget(row: Row, against: 'distribution' | 'limit', op: '>=' | '<=', threshold: number): Target {
  const value = against === 'distribution' ? row.vsPeer : row.vsLimit;
  const name = against === 'distribution' ? 'dist' : (row.limitName ?? 'limit');
  return { text: `${op} ${threshold}x ${name}`, pass: value === undefined ? undefined : op === '>=' ? value >= threshold : value <= threshold };
}

/** A target on regmirror's own value. */
export function valueTarget(row: Row, op: '<' | '<=' | '=', threshold: number, text: string): Target {
  const v = row.regmirror;
  const pass = v === undefined ? undefined : op === '<' ? v < threshold : op === '<=' ? v <= threshold : Math.abs(v - threshold) < 1e-9;
  return { text, pass };
}

/** Builds the rows from the samples, then their targets (which may look at other rows). */
export function buildRows(specs: RowSpec[], samples: Samples, previous: Map<string, number>): Row[] {
  const rows = new Map<string, Row>();
  for (const spec of specs) {
    const s = samples.of(spec.id);
    const pick = (c: Column): number | undefined => aggregate(s[c], spec.aggregate);
    const row: Row = {
      id: spec.id, workload: spec.workload, metric: spec.metric, unit: spec.unit, limitName: spec.limitName,
      regmirror: pick('regmirror'), distribution: pick('distribution'), limit: pick('limit'),
      targets: [], samples: s, previous: previous.get(spec.id),
    };
    row.vsPeer = roundRatio(s.regmirror, s.distribution, spec.aggregate);
    row.vsLimit = roundRatio(s.regmirror, s.limit, spec.aggregate);
    rows.set(spec.id, row);
  }
  for (const spec of specs) {
    const row = rows.get(spec.id)!;
    row.targets = spec.targets?.(row, rows) ?? [];
  }
  return [...rows.values()];
}

function num(v: number | undefined): string {
  if (v === undefined) return '-';
  const abs = Math.abs(v);
  if (abs >= 100) return v.toFixed(0);
  if (abs >= 10) return v.toFixed(1);
  if (abs >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

const x = (v: number | undefined): string => (v === undefined ? '-' : `${num(v)}x`);

function verdict(targets: Target[]): string {
  if (targets.length === 0) return '';
  if (targets.some((t) => t.pass === false)) return 'MISS';
  return targets.every((t) => t.pass === true) ? 'pass' : '?';
}

function change(row: Row): string {
  if (row.previous === undefined || row.regmirror === undefined || row.previous === 0) return '';
  const pct = (row.regmirror / row.previous - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(0)}%`;
}

/** The table as text (or as Markdown, for docs/performance.md); the last column only when some row has a previous value. */
export function formatTable(rows: Row[], markdown = false): string {
  const compared = rows.some((r) => change(r) !== '');
  const header = ['workload', 'metric', 'regmirror', 'distribution', 'nginx/direct', 'rm/dist', 'rm/limit', 'target', 'result', ...(compared ? ['vs last'] : [])];
  const lines = rows.map((r) => [
    r.workload,
    `${r.metric} (${r.unit})`,
    num(r.regmirror),
    num(r.distribution),
    r.limit === undefined ? '-' : `${num(r.limit)}${r.limitName === 'direct' ? ' direct' : ''}`,
    x(r.vsPeer),
    x(r.vsLimit),
    r.targets.map((t) => t.text).join('; '),
    verdict(r.targets),
    ...(compared ? [change(r)] : []),
  ]);
  return renderTable(header, lines, new Set([2, 3, 4, 5, 6]), markdown);
}

/** Cells as a Markdown table, or as aligned text with the `numeric` columns (indexes) right-aligned. */
function renderTable(header: string[], lines: string[][], numeric: Set<number>, markdown: boolean): string {
  if (markdown) {
    const esc = (cell: string): string => cell.replaceAll('|', '\\|');
    return [header, header.map(() => '---'), ...lines].map((cells) => `| ${cells.map(esc).join(' | ')} |`).join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

/** A table with columns of its own (the S3 column's): values by column, ratios between columns. */
export interface ColumnTable<C extends string = string> {
  columns: { id: C; header: string }[];
  /** Each ratio is `of` / `to`, per round as in the main table. */
  ratios: { of: C; to: C; header: string }[];
  rows: ColumnRow<C>[];
}

/** One line of a ColumnTable; `ratios` by their header (an object, so that JSON keeps undefined as absent). */
export interface ColumnRow<C extends string = string> {
  id: string;
  workload: string;
  metric: string;
  unit: string;
  values: Partial<Record<C, number>>;
  ratios: Partial<Record<string, number>>;
  samples: Partial<Record<C, number[]>>;
}

/** Builds a ColumnTable's rows from the samples. */
export function buildColumnTable<C extends string>(columns: ColumnTable<C>['columns'], ratios: ColumnTable<C>['ratios'], specs: RowSpec[], samples: Samples<C>): ColumnTable<C> {
  const rows = specs.map((spec): ColumnRow<C> => {
    const s = samples.of(spec.id);
    const values: Partial<Record<C, number>> = {};
    for (const { id } of columns) values[id] = aggregate(s[id], spec.aggregate);
    return {
      id: spec.id, workload: spec.workload, metric: spec.metric, unit: spec.unit, values,
      ratios: Object.fromEntries(ratios.map((r) => [r.header, roundRatio(s[r.of], s[r.to], spec.aggregate)])), samples: s,
    };
  });
  return { columns, ratios, rows };
}

/** A ColumnTable as text, or as Markdown. */
export function formatColumnTable(table: ColumnTable, markdown = false): string {
  const header = ['workload', 'metric', ...table.columns.map((c) => c.header), ...table.ratios.map((r) => r.header)];
  const lines = table.rows.map((r) => [r.workload, `${r.metric} (${r.unit})`, ...table.columns.map((c) => num(r.values[c.id])), ...table.ratios.map((ratio) => x(r.ratios[ratio.header]))]);
  return renderTable(header, lines, new Set(header.map((_, i) => i).filter((i) => i >= 2)), markdown);
}

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const LATEST = `${RESULTS_DIR}latest.json`;
const PREVIOUS = `${RESULTS_DIR}previous.json`;

/** What latest.json holds. */
export interface ResultsFile {
  meta: Record<string, unknown>;
  rows: Row[];
  /** The S3 column (absent when skipped). */
  s3?: ColumnTable;
  notes: string[];
}

/** regmirror's values in the last run's latest.json of the same kind (quick or full), by row id. */
export async function previousValues(quick: boolean): Promise<Map<string, number>> {
  if (!existsSync(LATEST)) return new Map();
  try {
    const last = JSON.parse(await readFile(LATEST, 'utf8')) as ResultsFile;
    if (last.meta.quick !== quick) return new Map();
    return new Map(last.rows.flatMap((r) => (r.regmirror === undefined ? [] : [[r.id, r.regmirror] as const])));
  } catch {
    return new Map();
  }
}

/** Writes latest.json, keeping the one it replaces as previous.json; returns its path. */
export async function writeResults(results: ResultsFile): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  if (existsSync(LATEST)) await rename(LATEST, PREVIOUS);
  await writeFile(LATEST, `${JSON.stringify(results, null, 2)}\n`);
  return LATEST;
}
