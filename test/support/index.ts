// Integration-test fixtures: real registries, a token service, relays and image seeding.
export * from './faulty-store.js';
export * from './faulty-upstream.js';
export * from './images.js';
export * from './process.js';
export * from './registry.js';
export * from './relay.js';
export * from './token-service.js';
