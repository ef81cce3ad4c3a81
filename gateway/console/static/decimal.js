// Exact decimal arithmetic on the API's decimal strings, as scaled BigInt integers: never floats.
// Used for margins (rate − cost) and the clearly labelled markup preview; the server stays the
// authority on every price.

const DECIMAL = /^([+-])?(\d+)(?:\.(\d+))?$/;

/** "12.3400" → {units: 123400n, scale: 4}; null when the text is not a plain decimal. */
export function parseDecimal(text) {
  const match = DECIMAL.exec(String(text ?? "").trim());
  if (!match) return null;
  const fraction = match[3] || "";
  let units = BigInt(match[2] + fraction);
  if (match[1] === "-") units = -units;
  return { units, scale: fraction.length };
}

function rescale(value, scale) {
  return value.units * 10n ** BigInt(scale - value.scale);
}

function aligned(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [rescale(a, scale), rescale(b, scale), scale];
}

export function add(a, b) {
  const [x, y, scale] = aligned(a, b);
  return { units: x + y, scale };
}

export function subtract(a, b) {
  const [x, y, scale] = aligned(a, b);
  return { units: x - y, scale };
}

export function compare(a, b) {
  const [x, y] = aligned(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Round toward +∞ to `places` decimals (ROUND_CEILING). */
export function ceiling(value, places) {
  if (value.scale <= places) return { units: rescale(value, places), scale: places };
  const divisor = 10n ** BigInt(value.scale - places);
  let units = value.units / divisor; // BigInt division truncates toward zero
  if (value.units % divisor > 0n) units += 1n;
  return { units, scale: places };
}

/** Like the gateway's format_money: at least 2 decimals, trailing zeros beyond them dropped. */
export function formatDecimal(value, minPlaces = 2) {
  const negative = value.units < 0n;
  const digits = (negative ? -value.units : value.units).toString().padStart(value.scale + 1, "0");
  const whole = digits.slice(0, digits.length - value.scale) || "0";
  let fraction = digits.slice(digits.length - value.scale).replace(/0+$/, "");
  fraction = fraction.padEnd(minPlaces, "0");
  const sign = negative && /[1-9]/.test(whole + fraction) ? "-" : "";
  return `${sign}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** rate − cost, as a decimal string; "—" when either is missing. */
export function margin(rate, cost) {
  const r = parseDecimal(rate);
  const c = parseDecimal(cost);
  if (!r || !c) return "—";
  return formatDecimal(subtract(r, c));
}

/** (rate − cost) / cost as a percentage with one decimal (truncated); "—" at zero cost. */
export function marginPercent(rate, cost) {
  const r = parseDecimal(rate);
  const c = parseDecimal(cost);
  if (!r || !c || c.units === 0n) return "—";
  const [diff, base] = aligned(subtract(r, c), c);
  return `${formatDecimal({ units: (diff * 1000n) / base, scale: 1 }, 1)} %`;
}

/**
 * The resale rate a markup rule would give, as the gateway computes it (gateway/catalog/pricing.py):
 * cost × (1 + percent/100) + fixed, rounded up to 4 places, never below the floor
 * cost × (1 + minMarginPercent/100) rounded up to 4 places (GATEWAY_MIN_MARGIN_PERCENT, from
 * GET /admin/system). Returns null when an input is not a decimal.
 */
export function markupPreview(costRate, percent, fixed, minMarginPercent = "0") {
  const cost = parseDecimal(costRate);
  const pct = parseDecimal(percent);
  const add_ = parseDecimal(fixed === "" || fixed === undefined ? "0" : fixed);
  const margin = parseDecimal(minMarginPercent);
  if (!cost || !pct || !add_ || !margin) return null;
  const computed = roundResaleRate(add(percentOf(cost, pct), add_));
  const floor = roundResaleRate(percentOf(cost, margin));
  return formatDecimal(compare(computed, floor) < 0 ? floor : computed);
}

/** value × (100 + percent) / 100, exactly: the division by 100 is two more decimal places. */
function percentOf(value, percent) {
  const factor = 100n * 10n ** BigInt(percent.scale) + percent.units;
  return { units: value.units * factor, scale: value.scale + percent.scale + 2 };
}

/** Rounded up to 4 places, and 0 when not positive (the gateway's round_resale_rate). */
function roundResaleRate(value) {
  return value.units <= 0n ? { units: 0n, scale: 4 } : ceiling(value, 4);
}

/** A number for drawing only (chart geometry), never for money shown as text. */
export function forDrawing(text) {
  const value = parseDecimal(text);
  return value ? Number(value.units) / 10 ** value.scale : 0;
}
