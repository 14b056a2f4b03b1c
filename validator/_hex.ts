/**
 * Hex text of keys in configs and key files.
 *
 * @module
 */

const HEX = /^(?:[0-9a-f]{2})*$/;

/**
 * The bytes of lower- or upper-case hex `value`.
 *
 * @throws {Error} naming `field` when `value` is not a string of hex digit pairs
 */
export function fromHex(value: unknown, field: string): Uint8Array {
  if (typeof value !== "string") throw new Error(`${field} must be a hex string`);
  const text = value.toLowerCase();
  if (!HEX.test(text)) throw new Error(`${field} must be hex digits, in pairs`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
