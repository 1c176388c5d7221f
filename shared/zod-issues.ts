import type { z } from 'zod';

/** One line naming every bad field of a failed zod parse: `path.to.field: message; other: message`. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
