// The text-format skill's tools: one exported function per tool in skill.toml, each taking the
// model's arguments object.

// Words that stay lower case inside an English title (articles, short conjunctions and
// prepositions), as the common style guides have it.
const MINOR = new Set([
  "a", "an", "and", "as", "at", "but", "by", "for", "in", "nor", "of", "on", "or", "the", "to", "with",
]);

export function title_case({ text }) {
  if (typeof text !== "string") {
    throw new TypeError("text must be a string");
  }
  const words = text.trim().split(/\s+/).filter((word) => word !== "");
  return words
    .map((word, at) => {
      const lower = word.toLowerCase();
      if (at > 0 && at < words.length - 1 && MINOR.has(lower)) {
        return lower;
      }
      // An acronym (NASA, EU) is written in capitals already.
      if (word.length > 1 && word === word.toUpperCase() && word !== lower) {
        return word;
      }
      const [first, ...rest] = lower;
      return first.toUpperCase() + rest.join("");
    })
    .join(" ");
}

// What a cell takes on screen, in characters (code points, not UTF-16 units).
const chars = (text) => [...text].length;

export function table({ rows }) {
  const valid =
    Array.isArray(rows) &&
    rows.length > 0 &&
    rows.every((row) => Array.isArray(row) && row.every((cell) => typeof cell === "string"));
  if (!valid) {
    throw new TypeError("rows must be a non-empty array of arrays of strings");
  }
  const columns = Math.max(...rows.map((row) => row.length));
  if (columns === 0) {
    throw new TypeError("rows must have at least one cell");
  }
  // Short rows get empty cells; a | or a line break inside a cell would break the table.
  const cells = rows.map((row) =>
    Array.from({ length: columns }, (_, at) =>
      (row[at] ?? "").replaceAll("|", "\\|").replace(/\s*\n\s*/g, " "),
    ),
  );
  // Three at least: Markdown's header separator needs three dashes.
  const widths = Array.from({ length: columns }, (_, at) =>
    Math.max(3, ...cells.map((row) => chars(row[at]))),
  );
  const line = (row) =>
    `| ${row.map((cell, at) => cell + " ".repeat(widths[at] - chars(cell))).join(" | ")} |`;
  const [header, ...body] = cells;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

// Tools may be async: the glue awaits what they return. (This one has nothing to wait for.)
export async function wrap({ text, width = 72 }) {
  if (typeof text !== "string") {
    throw new TypeError("text must be a string");
  }
  if (!Number.isInteger(width) || width < 1) {
    throw new RangeError(`width must be a whole number of characters, 1 or more, not ${width}`);
  }
  // Paragraphs (separated by blank lines) stay apart; a word longer than a line gets its own.
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => {
      const lines = [];
      let line = "";
      for (const word of paragraph.split(/\s+/).filter((word) => word !== "")) {
        if (line === "") {
          line = word;
        } else if (chars(line) + 1 + chars(word) <= width) {
          line += ` ${word}`;
        } else {
          lines.push(line);
          line = word;
        }
      }
      return [...lines, line].join("\n");
    })
    .filter((paragraph) => paragraph !== "")
    .join("\n\n");
}
