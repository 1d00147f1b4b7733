import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RepositoryFilter, type RepositoryRules } from './repository-filter.js';

/** The names of `names` that `rules` admit. */
function admitted(rules: RepositoryRules, names: string[]): string[] {
  const filter = RepositoryFilter.compile(rules)!;
  return names.filter((name) => filter.admits(name));
}

describe('RepositoryFilter', () => {
  it('costs nothing when it restricts nothing', () => {
    expect(RepositoryFilter.compile(undefined)).toBeUndefined();
    expect(RepositoryFilter.compile({})).toBeUndefined();
    expect(RepositoryFilter.compile({ deny: [] })).toBeUndefined();
  });

  it('matches * within one segment, and literal names exactly', () => {
    const names = ['library/alpine', 'library/alpine-dev', 'library', 'library/a/b', 'mylibrary/alpine', 'library/xalpine'];
    expect(admitted({ allow: ['library/*'] }, names)).toEqual(['library/alpine', 'library/alpine-dev', 'library/xalpine']);
    expect(admitted({ allow: ['library/alpine'] }, names)).toEqual(['library/alpine']);
    expect(admitted({ allow: ['library/alpine*'] }, names)).toEqual(['library/alpine', 'library/alpine-dev']);
    expect(admitted({ allow: ['*/alpine'] }, names)).toEqual(['library/alpine', 'mylibrary/alpine']);
    expect(admitted({ allow: ['library/*a*e*'] }, names)).toEqual(['library/alpine', 'library/alpine-dev', 'library/xalpine']);
    expect(admitted({ allow: ['lib*ary/*'] }, names)).toEqual(['library/alpine', 'library/alpine-dev', 'library/xalpine']);
    // The pieces around a * may not overlap: "aba" is not "ab*ba".
    expect(admitted({ allow: ['x/ab*ba'] }, ['x/aba', 'x/abba', 'x/abxba'])).toEqual(['x/abba', 'x/abxba']);
    expect(admitted({ allow: ['x/a*bc*c'] }, ['x/abc', 'x/abcc', 'x/axbcxc'])).toEqual(['x/abcc', 'x/axbcxc']);
  });

  it('matches ** across any number of whole segments, none included', () => {
    const names = ['bitnami', 'bitnami/redis', 'bitnami/charts/redis', 'bitnamix/redis', 'org/app', 'org/team/sub/app', 'org/apps'];
    expect(admitted({ allow: ['bitnami/**'] }, names)).toEqual(['bitnami', 'bitnami/redis', 'bitnami/charts/redis']);
    expect(admitted({ allow: ['org/**/app'] }, names)).toEqual(['org/app', 'org/team/sub/app']);
    expect(admitted({ allow: ['**/redis'] }, names)).toEqual(['bitnami/redis', 'bitnami/charts/redis', 'bitnamix/redis']);
    expect(admitted({ allow: ['**'] }, names)).toEqual(names);
    expect(admitted({ allow: ['**/**'] }, names)).toEqual(names);
    expect(admitted({ allow: ['**/charts/**'] }, names)).toEqual(['bitnami/charts/redis']);
    expect(admitted({ allow: ['org/*/**/app'] }, names)).toEqual(['org/team/sub/app']);
  });

  it('lets deny win over allow, and allows all that is not denied without an allow list', () => {
    const names = ['library/alpine', 'library/evil', 'library/evil-twin', 'bitnami/redis', 'other/app'];
    expect(admitted({ allow: ['library/*', 'bitnami/**'], deny: ['library/evil'] }, names)).toEqual(['library/alpine', 'library/evil-twin', 'bitnami/redis']);
    expect(admitted({ deny: ['library/evil*', 'bitnami/**'] }, names)).toEqual(['library/alpine', 'other/app']);
    expect(admitted({ allow: ['library/alpine'], deny: ['**'] }, names)).toEqual([]);
  });

  it('admits nothing with an empty allow list (the configuration refuses one as a likely mistake)', () => {
    expect(admitted({ allow: [] }, ['library/alpine', 'a'])).toEqual([]);
  });

  it('matches a repository name the way a regular expression of the same glob does', () => {
    const piece = fc.constantFrom('a', 'b', 'ab', '-', '.', '*');
    const segment = fc.oneof({ weight: 4, arbitrary: fc.array(piece, { minLength: 1, maxLength: 4 }).map((p) => p.join('').replace(/\*+/g, '*')) }, { weight: 1, arbitrary: fc.constant('**') });
    const pattern = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    const name = fc.array(fc.stringMatching(/^[ab]{1,3}(?:[.-][ab]{1,2})?$/), { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(pattern, name, (p, n) => {
        expect(RepositoryFilter.compile({ allow: [p] })!.admits(n)).toBe(referenceRegExp(p).test(`/${n}`));
      }),
      { numRuns: 3_000 },
    );
  });
});

/**
 * The glob as a regular expression over `/` + the name: each segment `/` and itself (`*` any run
 * without `/`), each `**` any number of `/` and a segment.
 */
function referenceRegExp(pattern: string): RegExp {
  const source = pattern.split('/').map((s) => (s === '**' ? '(?:/[^/]+)*' : `/${s.replaceAll('.', '\\.').replaceAll('*', '[^/]*')}`)).join('');
  return new RegExp(`^${source}$`);
}
