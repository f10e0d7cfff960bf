/** An element of an array parameter. */
type Element = string | number | boolean | null | undefined;

const NEEDS_ESCAPE = /["\\]/;

/**
 * An array parameter as PostgreSQL's array literal text ({"a","b",NULL}), which the statement casts
 * to its array type. node-postgres builds the same text for a JavaScript array, with two regular
 * expression replacements per element; a transition batch sends hundreds of elements, and that was
 * a measurable share of a worker's time. Strings are quoted (escaping only where one holds a quote
 * or a backslash), numbers and booleans written bare, null and undefined as NULL.
 */
export function arrayLiteral(values: readonly Element[]): string {
  let text = "{";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) text += ",";
    const value = values[i];
    if (value === null || value === undefined) text += "NULL";
    else if (typeof value === "string") text += `"${NEEDS_ESCAPE.test(value) ? value.replace(/["\\]/g, "\\$&") : value}"`;
    else if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new TypeError(`cannot send ${value} in an array parameter`);
      text += String(value);
    } else text += value ? "t" : "f";
  }
  return `${text}}`;
}
