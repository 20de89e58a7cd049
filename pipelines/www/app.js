// The upload page: asks the API for an upload (POST upload), sends the file
// straight to storage (a presigned form POST, or a PUT), then follows the
// image's status (GET download/{imageId}) until it is PROCESSED or FAILED.
// All API URLs are relative to the page, so the page works at / (imgpipe
// serve) and under an API Gateway stage (/Prod/) alike.
'use strict';

(function () {
  const TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif'];
  const PARALLEL = 3;           // uploads in flight at once
  const POLL_MS = 1000;         // between two status checks
  const POLL_LIMIT = 300;       // status checks before giving up (about five minutes)

  const api = new URL('.', document.baseURI);
  const input = document.getElementById('files');
  const drop = document.getElementById('drop');
  const methodChoice = document.getElementById('method');
  const list = document.getElementById('uploads');
  const empty = document.getElementById('empty');

  function humanBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' kB';
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }

  function make(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function sleep(ms) {
    return new Promise(resolve => setTimeout(resolve, ms));
  }

  // An error that carries a code and a message for the status line.
  function failure(code, message, extra) {
    const e = new Error(message);
    e.code = code;
    Object.assign(e, extra || {});
    return e;
  }

  // ---- one row of the list ---------------------------------------------------
  let rows = 0;
  function addRow(file) {
    rows++;
    empty.hidden = true;
    const li = make('li', 'upload');
    const id = 'upload-' + rows;
    li.id = id;
    li.dataset.status = 'WAITING';
    const name = make('p', 'name', file.name || 'image');
    const size = make('span', 'size', ' (' + humanBytes(file.size) + ')');
    name.appendChild(size);
    const bar = make('progress', 'bar');
    bar.max = 1;
    bar.value = 0;
    bar.id = id + '-bar';
    const barLabel = make('label', 'bar-label', 'Upload progress');
    barLabel.htmlFor = bar.id;
    const ident = make('p', 'ident hint');
    const status = make('p', 'status');
    const badge = make('span', 'badge', 'WAITING');
    const detail = make('span', 'detail', '');
    status.append(badge, ' ', detail);
    li.append(name, ident, barLabel, bar, status);
    list.prepend(li);

    return {
      li,
      identify(imageId) {
        li.dataset.imageId = imageId;
        ident.textContent = 'image id ' + imageId;
      },
      set(state, text) {
        li.dataset.status = state;
        badge.textContent = state;
        badge.className = 'badge badge-' + state.toLowerCase();
        detail.textContent = text || '';
      },
      progress(fraction) {
        bar.value = fraction;
        bar.textContent = Math.round(fraction * 100) + '%';
      },
      result(answer, file) {
        const fig = make('figure', 'result');
        const img = make('img');
        img.src = answer.url;
        img.alt = 'processed ' + (file.name || 'image');
        if (answer.width && answer.height) {
          img.width = answer.width;
          img.height = answer.height;
        }
        const caption = make('figcaption', 'result-size');
        const dims = answer.width && answer.height ? answer.width + ' × ' + answer.height + ' px' : 'size unknown';
        caption.textContent = dims + (answer.contentType ? ', ' + answer.contentType : '') +
          (answer.bytes ? ', ' + humanBytes(answer.bytes) : '') + ' (from ' + humanBytes(file.size) + ')';
        const link = make('a', 'open', 'Open the result');
        link.href = answer.url;
        link.rel = 'noopener';
        caption.append(' ', link);
        fig.append(img, caption);
        li.appendChild(fig);
      },
    };
  }

  // ---- the API -----------------------------------------------------------------
  async function apiJSON(path, init) {
    let res;
    try {
      res = await fetch(new URL(path, api), init);
    } catch (e) {
      throw failure('NetworkError', 'the service did not answer (' + e.message + ')', { retry: true });
    }
    let body = {};
    try {
      body = await res.json();
    } catch (e) {
      body = {};
    }
    return { status: res.status, body };
  }

  async function askUpload(file, method) {
    const r = await apiJSON('upload', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ filename: file.name, contentType: file.type, method }),
    });
    if (r.status !== 201) {
      const err = r.body.error || {};
      throw failure(err.code || 'HTTP' + r.status, err.message || 'the upload was not granted', { status: r.status });
    }
    return r.body;
  }

  // S3 answers errors as <Error><Code>..</Code><Message>..</Message></Error>.
  function storageError(xhr) {
    let code = 'HTTP' + xhr.status, message = 'storage refused the upload';
    try {
      const doc = new DOMParser().parseFromString(xhr.responseText || '', 'application/xml');
      const c = doc.querySelector('Error > Code'), m = doc.querySelector('Error > Message');
      if (c && c.textContent) code = c.textContent;
      if (m && m.textContent) message = m.textContent;
    } catch (e) { /* not XML: keep the status */ }
    return failure(code, 'refused by storage: ' + message, { status: xhr.status });
  }

  // Sends the file as the grant says; resolves when storage has it.
  function send(grant, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(grant.method, grant.uploadUrl);
      let body = file;
      if (grant.method === 'POST') {
        body = new FormData();
        for (const [k, v] of Object.entries(grant.fields || {})) body.append(k, v);
        body.append('file', file); // S3 reads the fields before the file: it goes last
      } else {
        for (const [k, v] of Object.entries(grant.headers || {})) xhr.setRequestHeader(k, v);
      }
      xhr.upload.onprogress = e => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve();
        } else {
          reject(storageError(xhr));
        }
      };
      xhr.onerror = () => reject(failure('NetworkError', 'storage could not be reached', { status: 0 }));
      xhr.onabort = () => reject(failure('Aborted', 'the upload was stopped', { status: 0 }));
      xhr.send(body);
    });
  }

  // A form POST that storage does not take at all (no POST support, or the
  // request blocked before any answer) is worth one more try by PUT; a
  // refusal of the file itself (EntityTooLarge, AccessDenied) is not.
  function postUnavailable(err) {
    return err.status === 0 || err.status === 405 || err.status === 501;
  }

  async function follow(row, id, file) {
    for (let i = 0; i < POLL_LIMIT; i++) {
      let r;
      try {
        r = await apiJSON('download/' + encodeURIComponent(id));
      } catch (e) {
        await sleep(POLL_MS);
        continue;
      }
      if (r.status === 200 && r.body.status === 'PROCESSED') {
        row.set('PROCESSED', 'ready (sent by ' + row.li.dataset.method + ')');
        row.result(r.body, file);
        return;
      }
      if (r.status === 422) {
        const err = r.body.error || {};
        row.set('FAILED', (err.code || 'ProcessingFailed') + ': ' + (err.message || 'the image could not be processed'));
        return;
      }
      if (r.status === 400 || r.status === 404) {
        row.set('FAILED', 'the service does not know this image (' + r.status + ')');
        return;
      }
      row.set('PENDING', 'uploaded, waiting for processing');
      await sleep(POLL_MS);
    }
    row.set('PENDING', 'still not processed; reload the page later to check again');
  }

  async function uploadOne(file) {
    const row = addRow(file);
    if (!TYPES.includes(file.type)) {
      row.set('FAILED', 'UnsupportedMediaType: ' + (file.type || 'unknown type') + ' is not an image type this service takes');
      return;
    }
    try {
      row.set('UPLOADING', 'asking for an upload');
      let grant = null;
      if (methodChoice.value !== 'PUT') {
        try {
          grant = await askUpload(file, 'POST');
        } catch (e) {
          if (e.status !== 400) throw e; // an API without form uploads: PUT below
        }
      }
      if (!grant || !grant.fields) grant = await askUpload(file, 'PUT');
      row.li.dataset.method = grant.method;
      row.identify(grant.imageId);
      row.set('UPLOADING', 'sending by ' + grant.method);
      try {
        await send(grant, file, f => row.progress(f));
      } catch (e) {
        if (grant.method !== 'POST' || !postUnavailable(e)) throw e;
        grant = await askUpload(file, 'PUT');
        row.li.dataset.method = grant.method;
        row.identify(grant.imageId);
        row.set('UPLOADING', 'the form was not taken; sending by PUT');
        await send(grant, file, f => row.progress(f));
      }
      row.set('PENDING', 'uploaded, waiting for processing');
      await follow(row, grant.imageId, file);
    } catch (e) {
      row.set('FAILED', (e.code || 'Error') + ': ' + e.message);
    }
  }

  // At most PARALLEL uploads at once, in the order the files came.
  const queue = [];
  let running = 0;
  function pump() {
    while (running < PARALLEL && queue.length) {
      running++;
      uploadOne(queue.shift()).finally(() => { running--; pump(); });
    }
  }
  function addFiles(files) {
    for (const f of files) queue.push(f);
    pump();
  }

  input.addEventListener('change', () => {
    addFiles(Array.from(input.files));
    input.value = '';
  });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, e => {
      e.preventDefault();
      drop.classList.add('over');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', e => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files) addFiles(Array.from(e.dataTransfer.files));
  });
}());
