import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HtpasswdAuth } from './client-auth.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
let auth: HtpasswdAuth | undefined;

function authWith(users: Record<string, string>): HtpasswdAuth {
  const path = join(mkdtempSync(join(tmpdir(), 'regmirror-htpasswd-')), 'users');
  writeFileSync(path, Object.entries(users).map(([u, p]) => `${u}:${hashSync(p, 5)}\n`).join(''));
  auth = new HtpasswdAuth(path, 'test', pino({ level: 'silent' }));
  return auth;
}

afterEach(() => auth?.close());

describe('HtpasswdAuth', () => {
  it('accepts the right password only, for a known user only, however often it is asked', async () => {
    const a = authWith({ alice: 'wonderland' });
    for (let round = 0; round < 2; round++) {
      expect(await a.authenticate(basic('alice', 'wonderland'))).toBe('alice');
      expect(await a.authenticate(basic('alice', 'looking-glass'))).toBeUndefined();
      expect(await a.authenticate(basic('mallory', 'wonderland'))).toBeUndefined();
    }
    expect(await a.authenticate('Basic !!!')).toBeUndefined();
  });

  it('answers many checks at once, all of them right', async () => {
    const a = authWith({ alice: 'wonderland', bob: 'builder' });
    const asked = Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? basic('alice', 'wonderland') : i % 3 === 1 ? basic('bob', `wrong-${i}`) : basic(`nobody-${i}`, 'x')));
    const answers = await Promise.all(asked.map((h) => a.authenticate(h)));
    expect(answers).toEqual(asked.map((_, i) => (i % 3 === 0 ? 'alice' : undefined)));
  });
});
