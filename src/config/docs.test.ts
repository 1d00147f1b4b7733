// Keeps docs/configuration.md in step with the schema: every key the schema has is documented.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { configSchema } from './schema.js';

interface JsonSchemaNode {
  properties?: Record<string, JsonSchemaNode>;
  additionalProperties?: JsonSchemaNode | boolean;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
}

function keyPaths(node: JsonSchemaNode, prefix: string, out: Set<string>): Set<string> {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    out.add(path);
    keyPaths(child, path, out);
  }
  if (typeof node.additionalProperties === 'object') keyPaths(node.additionalProperties, `${prefix}.<name>`, out);
  if (node.items) keyPaths(node.items, `${prefix}[]`, out);
  for (const alternative of node.anyOf ?? []) keyPaths(alternative, prefix, out);
  return out;
}

describe('docs/configuration.md', () => {
  it('documents every configuration key', () => {
    const docs = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
    const undocumented = [...keyPaths(schema, '', new Set())].filter((path) => !docs.includes(`\`${path}\``));
    expect(undocumented).toEqual([]);
  });
});
