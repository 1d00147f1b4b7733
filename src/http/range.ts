/** Single byte-range requests (RFC 9110), the form clients use to resume and split blob downloads. */

/** A satisfiable range, inclusive at both ends. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Interprets a Range header for an object of `size` bytes: a ByteRange, `'unsatisfiable'` (answer
 * 416), or undefined when the whole object should be sent (no header, multiple or unknown units).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return /^\s*bytes\s*=/i.test(header) && !header.includes(',') ? 'unsatisfiable' : undefined;
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') return 'unsatisfiable';
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (last !== '' && Number(last) < start)) return 'unsatisfiable';
  return { start, end };
}
