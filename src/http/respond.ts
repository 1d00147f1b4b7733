/** Writing registry responses: the common headers and the one way errors are rendered. */
import type { ServerResponse } from 'node:http';
import { errorBody, type RegistryError } from '../oci/errors.js';

/** Sends an error as OCI error JSON with the status its code carries. */
export function sendError(res: ServerResponse, err: RegistryError, head: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err);
  res.statusCode = err.status;
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

/** Sends a small JSON document. */
export function sendJson(res: ServerResponse, status: number, body: Buffer | string, head: boolean, contentType = 'application/json'): void {
  res.statusCode = status;
  res.setHeader('content-type', contentType);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}
