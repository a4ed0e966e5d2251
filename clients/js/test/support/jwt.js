// HS256 tokens for a relay in JWT mode, signed with a secret made per test
// process and handed to the relay through an environment variable.

import { createHmac, randomBytes } from 'node:crypto';

const secret = randomBytes(32).toString('hex');

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token for `sub` that expires in `lifetimeSeconds`. */
export function token(sub, lifetimeSeconds) {
  const exp = Math.floor(Date.now() / 1000) + lifetimeSeconds;
  const unsigned = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ sub, exp })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** Relay settings for JWT mode with that secret, the token only in headers. */
export const JWT_ENV = {
  ROOMCAST__AUTH__MODE: 'jwt',
  ROOMCAST__AUTH__QUERY_TOKEN: 'false',
  ROOMCAST__AUTH__JWT__ALGORITHMS: 'HS256',
  ROOMCAST__AUTH__JWT__SECRET_ENV: 'ROOMCAST_JS_TEST_SECRET',
  ROOMCAST__AUTH__JWT__LEEWAY: '0s',
  ROOMCAST_JS_TEST_SECRET: secret,
};
