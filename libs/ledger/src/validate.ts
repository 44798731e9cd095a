import { assertLedgerJson, LedgerJsonError } from '@connect/crypto';
import { isUuidText } from '@connect/db';
import { type AppendRequest, AppendValidationError } from './types.ts';

const EVENT_TYPE = /^[A-Z][A-Za-z0-9]{0,99}$/;
export const MAX_EVENTS_PER_APPEND = 1000;

function json(value: unknown, field: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppendValidationError(field, 'must be a JSON object');
  }
  try {
    assertLedgerJson(value);
  } catch (error) {
    if (error instanceof LedgerJsonError)
      throw new AppendValidationError(`${field}.${error.path}`, error.message);
    throw error;
  }
}

/** Checks an append request's shape before it reaches the database; throws naming the field. */
export function validateAppend(request: AppendRequest): void {
  const { stream, expectedVersion, events, actor, idempotencyKey } = request;
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 200 || !stream.isWellFormed()) {
    throw new AppendValidationError('stream', 'must be a string of 1 to 200 characters');
  }
  if (
    !(expectedVersion === 'any' || expectedVersion === 'no_stream') &&
    !(Number.isSafeInteger(expectedVersion) && expectedVersion >= 0)
  ) {
    throw new AppendValidationError('expectedVersion', 'must be a version ≥ 0, "no_stream" or "any"');
  }
  if (actor !== null && (typeof actor !== 'string' || actor.length === 0 || actor.length > 200)) {
    throw new AppendValidationError('actor', 'must be null or a non-empty string');
  }
  if (
    idempotencyKey !== undefined &&
    (typeof idempotencyKey !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(idempotencyKey))
  ) {
    throw new AppendValidationError('idempotencyKey', 'must be 1 to 255 printable ASCII characters');
  }
  if (!Array.isArray(events) || events.length === 0 || events.length > MAX_EVENTS_PER_APPEND) {
    throw new AppendValidationError('events', `must hold 1 to ${MAX_EVENTS_PER_APPEND} events`);
  }
  const ids = new Set<string>();
  events.forEach((event, i) => {
    const at = `events[${i}]`;
    if (event.id !== undefined) {
      if (typeof event.id !== 'string' || !isUuidText(event.id) || event.id !== event.id.toLowerCase())
        throw new AppendValidationError(`${at}.id`, 'must be a lowercase UUID');
      if (ids.has(event.id)) throw new AppendValidationError(`${at}.id`, 'is used twice in this append');
      ids.add(event.id);
    }
    if (typeof event.type !== 'string' || !EVENT_TYPE.test(event.type)) {
      throw new AppendValidationError(`${at}.type`, 'must be a PascalCase name');
    }
    if (event.schema !== undefined && !(Number.isSafeInteger(event.schema) && event.schema >= 1)) {
      throw new AppendValidationError(`${at}.schema`, 'must be an integer ≥ 1');
    }
    json(event.data, `${at}.data`);
    if (event.meta !== undefined) json(event.meta, `${at}.meta`);
  });
}
