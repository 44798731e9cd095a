// RFC 9457 problem details: every error this service answers with has this shape.
import type { FastifyReply } from 'fastify';

export interface FieldError {
  /** Where the bad value is: a JSON path in the body, or a query or header name. */
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, detail?: string, errors?: FieldError[]): Problem {
  return {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    ...(detail === undefined ? {} : { detail }),
    ...(errors === undefined ? {} : { errors }),
  };
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type('application/problem+json').send(body);
}

/** An error a route throws to answer with a problem; the server's error handler sends it. */
export class HttpProblem extends Error {
  constructor(readonly body: Problem) {
    super(body.detail ?? body.title);
  }
}

export function badRequest(errors: FieldError[], detail = 'The request has invalid fields.'): HttpProblem {
  return new HttpProblem(problem(400, detail, errors));
}
