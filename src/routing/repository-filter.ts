/**
 * Which repositories an upstream may be pulled for (`upstreams.<name>.repositories`). Patterns are
 * compiled once, when the router is built, into segment matchers: matching a name splits it once
 * and compares strings, with no regular expression, so no pattern can make a request slow (a
 * check is linear in the name's length for each pattern).
 *
 * The dialect (config/schema.ts validates it): a pattern is written like a repository name, as the
 * upstream calls it (`library/alpine`, not `alpine` or `docker.io/library/alpine`). Within a path
 * segment `*` stands for any run of characters, none included (`library/*`, `team/app-*`); a
 * segment `**` stands for any number of whole segments, none included (`bitnami/**` is `bitnami`
 * and everything below it, `**` every name). Deny wins over allow; with an allow list, a name must
 * match one of its patterns.
 */

/** The rules of one upstream, as configured. */
export interface RepositoryRules {
  allow?: readonly string[] | undefined;
  deny?: readonly string[] | undefined;
}

/** A segment `**`. */
const ANY_SEGMENTS = null;
/** One segment of a pattern: `**`, or the literal pieces between its `*`s (one piece: no `*`). */
type Segment = readonly string[] | typeof ANY_SEGMENTS;
type Pattern = readonly Segment[];

/** The compiled rules of one upstream. */
export class RepositoryFilter {
  private constructor(
    /** Undefined: every name not denied is allowed. */
    private readonly allow: readonly Pattern[] | undefined,
    private readonly deny: readonly Pattern[],
  ) {}

  /** Compiles `rules`; undefined when they restrict nothing, so that such an upstream pays for no check. */
  static compile(rules: RepositoryRules | undefined): RepositoryFilter | undefined {
    const allow = rules?.allow?.map(compilePattern);
    const deny = (rules?.deny ?? []).map(compilePattern);
    if (allow === undefined && deny.length === 0) return undefined;
    return new RepositoryFilter(allow, deny);
  }

  /** True when `repository` (a valid name) may be served. An empty allow list admits nothing. */
  admits(repository: string): boolean {
    const segments = repository.split('/');
    if (this.deny.some((pattern) => matches(pattern, segments))) return false;
    return this.allow === undefined || this.allow.some((pattern) => matches(pattern, segments));
  }
}

function compilePattern(text: string): Pattern {
  const pattern: Segment[] = [];
  for (const segment of text.split('/')) {
    if (segment !== '**') pattern.push(segment.split('*'));
    else if (pattern.at(-1) !== ANY_SEGMENTS) pattern.push(ANY_SEGMENTS); // `**/**` is `**`
  }
  return pattern;
}

/**
 * Whether the segments of a name match a pattern. A `**` first takes no segment and, each time what
 * follows it fails, one more (the classic wildcard walk over segments instead of characters): each
 * `**` resumes at most once per segment, so the work is bounded by segments × pattern length.
 */
function matches(pattern: Pattern, segments: readonly string[]): boolean {
  let p = 0;
  let s = 0;
  let lastAny = -1; // the latest `**` passed
  let resumeAt = 0; // the segment after those that `**` takes so far
  while (s < segments.length) {
    const segment = pattern[p];
    if (segment === ANY_SEGMENTS) {
      lastAny = p++;
      resumeAt = s;
    } else if (segment !== undefined && segmentMatches(segment, segments[s]!)) {
      p++;
      s++;
    } else if (lastAny !== -1) {
      p = lastAny + 1;
      s = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pattern[p] === ANY_SEGMENTS) p++;
  return p === pattern.length;
}

/** Whether one segment of a name matches one of a pattern: its pieces in order, `*` between them. */
function segmentMatches(pieces: readonly string[], segment: string): boolean {
  if (pieces.length === 1) return segment === pieces[0];
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const end = segment.length - last.length;
  if (end < first.length || !segment.startsWith(first) || !segment.endsWith(last)) return false;
  let at = first.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const found = segment.indexOf(pieces[i]!, at);
    if (found === -1 || found + pieces[i]!.length > end) return false;
    at = found + pieces[i]!.length;
  }
  return true;
}
