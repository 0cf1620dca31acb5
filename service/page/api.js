// The service's public endpoints, same origin only. An error carries the API's own message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

async function reach(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `cannot reach the service (${err.message}); is it still running?`);
  }
}

async function request(path, init) {
  return answer(await reach(path, { ...init, headers: { accept: "application/json" } }));
}

/** A file the service serves (a sample image), as a Blob. */
export async function getBlob(path) {
  const response = await reach(path, { method: "GET" });
  if (!response.ok) await answer(response); // throws with the API's message
  return response.blob();
}

export function getJson(path) {
  return request(path, { method: "GET", cache: "no-store" });
}

export function postForm(path, form) {
  return request(path, { method: "POST", body: form });
}

/** A multipart body of images as `files`; `withLabels`: their true labels too, when every one is known. */
export function imagesForm(images, withLabels) {
  const form = new FormData();
  for (const image of images) form.append("files", image.blob, image.name);
  if (withLabels && images.every((image) => image.truth !== null)) {
    form.append("labels", images.map((image) => image.truth.class_index).join(","));
  }
  return form;
}

export function describeError(err) {
  if (err instanceof ApiError) return err.status ? `The service answered ${err.status}: ${err.message}` : err.message;
  return `Something went wrong in this page: ${err.message}`;
}
