import type { z } from 'zod';
import { badRequest } from './problem.ts';
import { unstorableText } from './text.ts';

/**
 * Parses with a zod schema; a failure is a 400 problem naming every invalid field by path. Text
 * anywhere in the value must be storable (text.ts), whatever the schema says of it.
 */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, where = 'body'): z.infer<T> {
  const unstorable = unstorableText(value, [where]);
  if (unstorable.length > 0) throw badRequest(unstorable);
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw badRequest(
    result.error.issues.map((issue) => ({
      path: [where, ...issue.path.map(String)].join('.'),
      message: issue.message,
    })),
  );
}
