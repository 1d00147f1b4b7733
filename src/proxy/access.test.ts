import { describe, expect, it } from 'vitest';
import { handshakeFailure } from './access.js';

const error = (code?: string): NodeJS.ErrnoException => Object.assign(new Error('handshake'), code === undefined ? {} : { code });

describe('handshakeFailure', () => {
  it("names the alerts of a client that rejects the certificate, plain HTTP, other TLS errors and hang-ups", () => {
    expect(handshakeFailure(error('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'))).toBe('unknown-ca');
    expect(handshakeFailure(error('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'))).toBe('bad-certificate');
    expect(handshakeFailure(error('ERR_SSL_HTTP_REQUEST'))).toBe('not-tls');
    expect(handshakeFailure(error('ERR_SSL_NO_SHARED_CIPHER'))).toBe('protocol');
    expect(handshakeFailure(error('ECONNRESET'))).toBe('closed');
    expect(handshakeFailure(error())).toBe('closed');
  });
});
