/**
 * The one error model of regmirror. Every failure that reaches a client is a RegistryError carrying
 * an OCI distribution error code; the HTTP status comes from the code, never from the caller (one
 * exception, a class of its own: UnsupportedEndpoint).
 */

/** Error codes of the OCI distribution spec, plus the few a proxy needs (all upper case on the wire). */
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UPSTREAM_UNAVAILABLE: 502,
  /** Upstream answered with a client error other than 401/403/404/416/429: a refusal, not an outage. */
  UPSTREAM_REFUSED: 502,
  UPSTREAM_TIMEOUT: 504,
  UNKNOWN: 500,
} as const;

/** A code from the catalogue above. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * A failure with an OCI error code; `headers` are extra response headers (e.g. Retry-After). The
 * message and detail go to the client; a `cause` (what upstream or the network really said) only
 * to the log.
 */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, detail?: unknown, headers: Record<string, string> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RegistryError';
    this.code = code;
    this.detail = detail;
    this.headers = headers;
  }

  /** The HTTP status this error is answered with. */
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * An endpoint a mirror does not have (the catalog): UNSUPPORTED, answered 404 rather than the
 * code's 405, which would say that some other method is allowed there.
 */
export class UnsupportedEndpoint extends RegistryError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }

  override get status(): number {
    return 404;
  }
}

/** The OCI error JSON body for one error. */
export function errorBody(err: RegistryError): string {
  const entry: { code: string; message: string; detail?: unknown } = { code: err.code, message: err.message };
  if (err.detail !== undefined) entry.detail = err.detail;
  return JSON.stringify({ errors: [entry] });
}

/** Maps anything thrown to a RegistryError: known ones pass, the rest become UNKNOWN. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  return new RegistryError('UNKNOWN', 'internal error', undefined, undefined, { cause: err });
}
