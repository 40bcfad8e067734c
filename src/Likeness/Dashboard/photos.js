// The checks POST /v2/loras makes of its images, made in the browser first so that a wrong set is fixed before it is
// sent. Each refusal carries the API's own code; the server still checks everything (it also decodes every photo).

const MiB = 1024 * 1024;
export const MIN_PHOTOS = 15;
export const MAX_PHOTOS = 30;
export const MAX_PHOTO_BYTES = 10 * MiB;
export const MAX_TOTAL_BYTES = 100 * MiB;
const MIN_SIDE = 64;
const MAX_PIXELS = 50_000_000;

/** @typedef {import("./api.js").Problem} Problem */
/** @typedef {{ file: File, url: string, width: number, height: number }} Photo */

/**
 * The format the content says, as the API judges it (magic bytes, not the name or declared type).
 * @param {Uint8Array} b
 * @returns {"jpg" | "png" | "webp" | null}
 */
export function formatOf(b) {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpg";
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b[i] === v)) return "png";
  const ascii = (/** @type {number} */ from) => String.fromCharCode(...b.slice(from, from + 4));
  if (ascii(0) === "RIFF" && ascii(8) === "WEBP") return "webp";
  return null;
}

/**
 * @param {string} code
 * @param {string} detail
 * @returns {Problem}
 */
export const refusal = (code, detail) => ({
  status: 400, code, detail, local: true,
  title: code.charAt(0).toUpperCase() + code.slice(1).replaceAll("_", " "),
});

/**
 * Checks one file and reads its size in pixels; answers the photo or the refusal.
 * @param {File} file
 * @returns {Promise<Photo | Problem>}
 */
export async function inspect(file) {
  if (file.size > MAX_PHOTO_BYTES) return refusal("image_too_large", `Each image may be at most 10 MiB; '${file.name}' is larger.`);
  const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  if (!formatOf(head)) return refusal("unsupported_image", `'${file.name}': only JPEG, PNG and WebP images are accepted.`);
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch {
    return refusal("unsupported_image", `'${file.name}': the image could not be decoded.`);
  }
  const { width, height } = bitmap;
  bitmap.close();
  if (Math.min(width, height) < MIN_SIDE)
    return refusal("image_too_small", `'${file.name}': the shortest side is ${Math.min(width, height)} px; at least ${MIN_SIDE} px are needed.`);
  if (width * height > MAX_PIXELS)
    return refusal("image_too_many_pixels", `'${file.name}': ${width}×${height} is over 50 megapixels.`);
  return { file, url: URL.createObjectURL(file), width, height };
}

/**
 * Whether two files hold the same bytes (only files of one size are compared).
 * @param {File} a
 * @param {File} b
 */
async function sameBytes(a, b) {
  if (a.size !== b.size) return false;
  const [x, y] = await Promise.all([a.arrayBuffer(), b.arrayBuffer()]).then(r => r.map(v => new Uint8Array(v)));
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * The index of a photo already in the set with the same bytes as <file>, or -1.
 * @param {Photo[]} photos
 * @param {File} file
 */
export async function duplicateOf(photos, file) {
  for (let i = 0; i < photos.length; i++) if (await sameBytes(photos[i].file, file)) return i;
  return -1;
}

/**
 * The set as a whole, as it must be when it is sent: count and total size.
 * @param {Photo[]} photos
 * @returns {Problem | null}
 */
export function checkSet(photos) {
  const n = photos.length;
  if (n < MIN_PHOTOS) return refusal("too_few_images", `Upload at least ${MIN_PHOTOS} images; got ${n}.`);
  if (n > MAX_PHOTOS) return refusal("too_many_images", `Upload at most ${MAX_PHOTOS} images; got ${n}.`);
  if (photos.reduce((s, p) => s + p.file.size, 0) > MAX_TOTAL_BYTES) return refusal("image_too_large", "The images together may be at most 100 MiB.");
  return null;
}

/** @param {number} bytes */
export const formatBytes = bytes => bytes < MiB ? `${Math.max(1, Math.round(bytes / 1024))} KiB` : `${(bytes / MiB).toFixed(1)} MiB`;
