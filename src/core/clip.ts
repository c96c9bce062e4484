// Cuts caller-supplied text before it is echoed in a message or written to a log, so a caller
// cannot make one line as long as the message it sent. The original length stays visible.

/** How much of a caller's value a human message echoes. */
export const ECHO_MAX_CHARS = 64;

/** `value` itself if at most `maxChars` long, else its head and its original length: `aaaa…(3000000 chars)`. */
export function clip(value: string, maxChars: number = ECHO_MAX_CHARS): string {
  if (value.length <= maxChars) return value;
  return `${value.slice(0, maxChars)}…(${value.length} chars)`;
}
