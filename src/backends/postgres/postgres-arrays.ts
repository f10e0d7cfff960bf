/** An element of an array parameter. */
type Element = string | number | boolean | null | undefined;

/**
 * Array parameters as PostgreSQL's array literal text ({"a","b",NULL}), which the statement casts
 * to its array type. node-postgres builds the same text for a JavaScript array, with two regular
 * expression replacements per element; a transition batch sends thousands of elements, and that was
 * a measurable share of a worker's time. Strings are quoted (escaped only where one holds a quote
 * or a backslash), numbers and booleans written bare, null and undefined as NULL.
 */
export function arrayLiteral(values: readonly Element[]): string {
  const elements = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) elements[i] = element(values[i]);
  return `{${elements.join(",")}}`;
}

/** One element of an array literal. */
function element(value: Element): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "string") return quoted(value);
  if (typeof value === "number") return numberElement(value);
  return value ? "t" : "f";
}

/** A string element, quoted; escaped only where it holds a quote or a backslash. */
function quoted(text: string): string {
  return text.indexOf('"') === -1 && text.indexOf("\\") === -1 ? `"${text}"` : `"${escapedText(text)}"`;
}

/** The text as it goes between an element's quotes. */
function escapedText(text: string): string {
  return text.replace(/["\\]/g, "\\$&");
}

function numberElement(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`cannot send ${value} in an array parameter`);
  return String(value);
}
