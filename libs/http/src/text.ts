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

/** Every string (value or key) in a parsed JSON value that is not storable text, with its path. */
export function unstorableText(value: unknown, path: string[] = []): { path: string; message: string }[] {
  if (path.length > MAX_DEPTH)
    return [{ path: path.join('.'), message: `is nested deeper than ${MAX_DEPTH} levels` }];
  if (typeof value === 'string') {
    const message = textProblem(value);
    return message ? [{ path: path.join('.'), message }] : [];
  }
  if (typeof value !== 'object' || value === null) return [];
  const found: { path: string; message: string }[] = [];
  for (const [key, child] of Object.entries(value)) {
    const keyMessage = textProblem(key);
    if (keyMessage) found.push({ path: [...path, key].join('.'), message: `its name ${keyMessage}` });
    else found.push(...unstorableText(child, [...path, key]));
  }
  return found;
}
