import { MAX_FIELD_ERRORS } from './problem.ts';

// Text PostgreSQL can store and that means one thing: no NUL (text and jsonb refuse it) and no
// unpaired UTF-16 surrogate (UTF-8 cannot encode one, so it would become U+FFFD and two different
// strings, two passwords say, would become the same).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function textProblem(text: string): string | undefined {
  if (text.includes('\0')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(text)) return 'must not contain unpaired surrogates (invalid Unicode)';
  return undefined;
}

const MAX_DEPTH = 64;
// One more than a problem names, so it can say some were left out.
const MAX_FOUND = MAX_FIELD_ERRORS + 1;

/** Every string (value or key) in a parsed JSON value that is not storable text, with its path. */
export function unstorableText(value: unknown, path: string[] = []): { path: string; message: string }[] {
  const found: { path: string; message: string }[] = [];
  gatherUnstorable(value, path, found);
  return found;
}

// Into one list, stopping once it holds MAX_FOUND (a body of a million bad strings is 8 MB).
function gatherUnstorable(value: unknown, path: string[], found: { path: string; message: string }[]): void {
  if (found.length >= MAX_FOUND) return;
  if (path.length > MAX_DEPTH) {
    found.push({ path: path.join('.'), message: `is nested deeper than ${MAX_DEPTH} levels` });
    return;
  }
  if (typeof value === 'string') {
    const message = textProblem(value);
    if (message) found.push({ path: path.join('.'), message });
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, child] of Object.entries(value)) {
    if (found.length >= MAX_FOUND) return;
    const keyMessage = textProblem(key);
    if (keyMessage) found.push({ path: [...path, key].join('.'), message: `its name ${keyMessage}` });
    else gatherUnstorable(child, [...path, key], found);
  }
}
