// A UUID's hyphenated text, the one pattern for every check of an id that comes from outside (a
// request, a job's payload, a command line) before it is cast to uuid.

/** The pattern, for PostgreSQL's case-insensitive `~*` as much as for JavaScript. */
export const UUID_TEXT_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

const UUID_TEXT = new RegExp(UUID_TEXT_PATTERN, 'i');

/** Whether `value` is a UUID's hyphenated text, in either case. */
export const isUuidText = (value: string) => UUID_TEXT.test(value);
