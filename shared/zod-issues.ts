import type { z } from 'zod';
import { InputFileError } from './errors.js';

/** One line naming every bad field of a failed zod parse: `path.to.field: message; other: message`. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parse `input` with `schema`, or throw an InputFileError naming `source`, `what` and every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, source: string, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InputFileError(source, '', `invalid ${what}: ${formatZodIssues(parsed.error)}`);
  return parsed.data;
}
