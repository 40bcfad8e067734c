// The dashboard's only way to the service: the public /v2 API, with the key in a header, never in a URL.

const KEY_ITEM = "likeness.apiKey";

/**
 * An RFC 9457 problem as the API sends it, or one the dashboard made with the API's code for a check it runs first.
 * @typedef {{ status?: number, title: string, detail?: string, code?: string, errors?: Record<string, string[]>, traceId?: string, local?: boolean }} Problem
 */

export class ProblemError extends Error {
  /** @param {Problem} problem */
  constructor(problem) {
    super(problem.detail || problem.title);
    this.problem = problem;
  }
}

/** @returns {string | null} */
export const apiKey = () => sessionStorage.getItem(KEY_ITEM);
/** @param {string | null} key */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

const headers = (/** @type {Record<string, string>} */ extra = {}) => ({ "X-API-Key": apiKey() ?? "", ...extra });

/**
 * Turns a refused response into its problem; a body that is not problem+json still says what happened.
 * @param {Response | XMLHttpRequest} res
 * @param {string} text
 * @returns {Problem}
 */
export function problemOf(res, text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body.title === "string") return body;
  } catch { /* not JSON: described below */ }
  const status = res.status;
  return { status, title: `HTTP ${status}${"statusText" in res && res.statusText ? " " + res.statusText : ""}`, detail: text.slice(0, 300) || undefined };
}

/**
 * Calls the API and returns its JSON; a refusal throws a ProblemError, a lost connection a problem that says so.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {Record<string, string>} [extra]
 */
export async function call(method, path, body, extra) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body === undefined ? extra : { "Content-Type": "application/json", ...extra }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ProblemError({ title: "The service could not be reached", detail: String(e), local: true });
  }
  const text = await res.text();
  if (!res.ok) throw new ProblemError(problemOf(res, text));
  return text ? JSON.parse(text) : null;
}

export const get = (/** @type {string} */ path) => call("GET", path);

/**
 * Uploads a form with the upload's progress (fetch cannot report it), answering the parsed JSON.
 * @param {string} path
 * @param {FormData} form
 * @param {(sent: number, total: number) => void} onProgress
 * @returns {Promise<any>}
 */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("X-API-Key", apiKey() ?? "");
    xhr.upload.onprogress = e => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => xhr.status >= 200 && xhr.status < 300
      ? resolve(JSON.parse(xhr.responseText))
      : reject(new ProblemError(problemOf(xhr, xhr.responseText)));
    xhr.onerror = () => reject(new ProblemError({ title: "The upload was cut off", detail: "The connection to the service was lost.", local: true }));
    xhr.send(form);
  });
}

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send the key header). Yields each event until the
 * server ends the stream; comments (heartbeats) only keep it alive.
 * @param {string} path
 * @param {AbortSignal} signal
 * @returns {AsyncGenerator<{ event: string, data: string }>}
 */
export async function* events(path, signal) {
  const res = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!res.ok) throw new ProblemError(problemOf(res, await res.text()));
  if (!res.body || !res.headers.get("Content-Type")?.startsWith("text/event-stream"))
    throw new ProblemError({ title: "No event stream", detail: "The service answered without text/event-stream.", local: true });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

/**
 * Downloads a file the API serves only with the key (the adapter), through a blob link.
 * @param {string} path
 * @param {string} fileName
 */
export async function download(path, fileName) {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw new ProblemError(problemOf(res, await res.text()));
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: fileName });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
