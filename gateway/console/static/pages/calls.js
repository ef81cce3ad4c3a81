// The upstream calls about one order or refill: the same table on both pages.

import { dash, h, table, time } from "../dom.js";

const COLUMNS = [
  { label: "When", cell: (c) => time(c.created_at) },
  { label: "Action", cell: (c) => c.action },
  { label: "Outcome", cell: (c) => c.outcome },
  { label: "HTTP", cell: (c) => dash(c.http_status), num: true },
  { label: "Took (ms)", cell: (c) => String(c.duration_ms), num: true },
  { label: "Error", cell: (c) => dash(c.error) },
];

/** A section "Upstream calls" with its table; ``id`` names the table (``<id>``) and its title. */
export function upstreamCalls(calls, { id, caption, empty }) {
  return h(
    "section",
    { "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, "Upstream calls"),
    table(caption, COLUMNS, calls, { id, empty }),
  );
}
