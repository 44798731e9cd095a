// Receiving a document upload: refuse before any byte lands on disk, and leave no draft behind
// on any failure (a limit, a malformed body, a client gone, a refused append).
import { randomUUID } from 'node:crypto';
import { type Commitment, decide } from '@connect/domain';
import { badRequest, HttpProblem, problem } from '@connect/http';
import type { Multipart } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import {
  type DocumentSealing,
  DocumentTooLargeError,
  type Draft,
  discardDraft,
  UploadCutOffError,
  writeDraft,
} from './document-store.ts';
import { mustBeAtVersion } from './execute.ts';
import type { TypeRegistry } from './load.ts';

/** Besides the file, a form needs only `name`; the slack is for clients that add their own fields. */
export const UPLOAD_LIMITS = { files: 1, fields: 5 };

export interface Upload {
  draft: Draft;
  name: string | undefined;
  filename: string;
  mediaType: string;
}

/**
 * Throws the Refusal attaching a document to this state would get (not the creator's or not a
 * party's to do, not in this state, a stale If-Match), whatever the document is, by deciding a
 * placeholder: the rule, for terms and for evidence alike, stays in the domain's decide().
 */
export async function assertMayAttach(
  state: Commitment,
  actor: string,
  types: TypeRegistry,
  ifMatch: number | undefined,
): Promise<void> {
  mustBeAtVersion(state, ifMatch);
  const placeholder = {
    action: 'attach-document',
    name: 'document',
    mediaType: 'application/octet-stream',
    size: 0,
    sha256: '0'.repeat(64),
  } as const;
  decide(placeholder, state, {
    actor,
    now: new Date().toISOString(),
    newId: randomUUID,
    types: await types.get(),
  });
}

function parserProblem(error: unknown, maxBytes: number): HttpProblem {
  const { code, statusCode, message } = error as { code?: string; statusCode?: number; message?: string };
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new HttpProblem(problem(413, `Documents are limited to ${maxBytes} bytes.`));
    case 'FST_FIELDS_LIMIT':
      return new HttpProblem(
        problem(
          413,
          `Too many form fields: send the "file" part and at most ${UPLOAD_LIMITS.fields} fields.`,
        ),
      );
    case 'FST_FILES_LIMIT':
      return new HttpProblem(problem(413, 'Send one file per upload.'));
    case 'FST_PARTS_LIMIT':
      return new HttpProblem(problem(413, 'Too many parts in the form.'));
  }
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500)
    return new HttpProblem(problem(statusCode, message ?? 'The upload was refused.'));
  return new HttpProblem(problem(400, `The multipart body is malformed: ${message ?? 'unreadable'}.`));
}

/** What made the parser cut the file off, if it says so soon: the cause beats the symptom. */
function parserCause(next: Promise<unknown>): Promise<unknown> {
  const wait = new Promise((resolve) => setTimeout(resolve, 1000).unref());
  return Promise.race([
    next.then(
      () => undefined,
      (error: unknown) => error,
    ),
    wait,
  ]);
}

/**
 * Reads the form: `name` fields, and the `file` part streamed to a draft. The caller commits
 * or discards the draft; any failure here has discarded it already.
 */
export async function receiveUpload(
  request: FastifyRequest,
  dir: string,
  maxBytes: number,
  sealing: DocumentSealing,
): Promise<Upload> {
  const parts = request.parts();
  let next: Promise<IteratorResult<Multipart>> = parts.next();
  let name: string | undefined;
  let upload: Omit<Upload, 'name'> | undefined;
  try {
    for (;;) {
      const { value: part, done } = await next.catch((error: unknown) => {
        throw parserProblem(error, maxBytes);
      });
      if (done) break;
      next = parts.next();
      if (part.type === 'field') {
        if (part.fieldname === 'name') name = String(part.value);
      } else if (part.fieldname === 'file' && !upload) {
        // A parser error while the file streams (a limit, a malformed body) must fail the file:
        // the parser stops feeding it, and a file left waiting never ends.
        next.catch((error: unknown) => part.file.destroy(error as Error));
        const mediaType = part.mimetype || 'application/octet-stream';
        upload = {
          draft: await writeDraft(dir, part.file, maxBytes, sealing),
          filename: part.filename,
          mediaType,
        };
      } else part.file.resume();
    }
  } catch (error) {
    if (upload) await discardDraft(upload.draft);
    if (error instanceof HttpProblem) throw error;
    if (error instanceof DocumentTooLargeError)
      throw new HttpProblem(problem(413, `Documents are limited to ${maxBytes} bytes.`));
    if (error instanceof UploadCutOffError) {
      const cause = await parserCause(next);
      throw cause ? parserProblem(cause, maxBytes) : new HttpProblem(problem(400, 'The upload was cut off.'));
    }
    if ((error as { code?: string }).code?.startsWith('FST_')) throw parserProblem(error, maxBytes);
    throw error;
  }
  if (!upload) throw badRequest([{ path: 'body.file', message: 'attach the document as the "file" part' }]);
  return { ...upload, name };
}
