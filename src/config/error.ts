/**
 * The error of a configuration that cannot be used, in a module of its own: credentials.ts (which
 * upstream/ and clients/ import for basicToken) throws it without loading the YAML parser or the schema.
 */

/** A configuration that cannot be used; the message is one line per problem, naming the key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
