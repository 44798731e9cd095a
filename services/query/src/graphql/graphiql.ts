// GraphiQL at /graphiql, served from the installed graphiql, react and react-dom packages (no CDN:
// it works where the machine has no internet), with the headers editor open on an Authorization
// header to paste the bearer token into. Subscriptions carry the same headers in connection_init.
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

const JS = 'application/javascript; charset=utf-8';
const ASSETS: Record<string, { file: string; type: string }> = {
  'react.production.min.js': {
    file: path.join(packageDir('react'), 'umd/react.production.min.js'),
    type: JS,
  },
  'react-dom.production.min.js': {
    file: path.join(packageDir('react-dom'), 'umd/react-dom.production.min.js'),
    type: JS,
  },
  'graphiql.min.js': { file: path.join(packageDir('graphiql'), 'graphiql.min.js'), type: JS },
  'graphiql.min.css': {
    file: path.join(packageDir('graphiql'), 'graphiql.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

// Header names go lower-case: HTTP does not mind, and connection_init's payload is read as
// `authorization`.
const SETUP = `(function () {
  var httpUrl = location.origin + '/graphql';
  var wsUrl = httpUrl.replace(/^http/, 'ws');
  var fetcher = GraphiQL.createFetcher({ url: httpUrl, subscriptionUrl: wsUrl });
  function lowerCased(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      if (headers[name]) out[name.toLowerCase()] = headers[name];
    });
    return out;
  }
  function withHeaders(params, options) {
    return fetcher(params, Object.assign({}, options, { headers: lowerCased(options && options.headers) }));
  }
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: withHeaders,
      defaultQuery: '# Paste your access token after "Bearer " in the Headers tab below, then run:\\n{\\n  me {\\n    id\\n    displayName\\n  }\\n}\\n',
      defaultHeaders: '{\\n  "Authorization": "Bearer "\\n}',
      defaultEditorToolsVisibility: 'headers',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    }),
  );
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Connect GraphiQL</title>
<link rel="stylesheet" href="/graphiql/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/react.production.min.js"></script>
<script src="/graphiql/react-dom.production.min.js"></script>
<script src="/graphiql/graphiql.min.js"></script>
<script src="/graphiql/setup.js"></script>
</body>
</html>
`;

export async function graphiqlRoutes(app: FastifyInstance): Promise<void> {
  app.get('/graphiql', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(PAGE),
  );
  app.get('/graphiql/setup.js', async (_request, reply) =>
    reply.type(JS).header('cache-control', 'no-cache').send(SETUP),
  );
  for (const [name, asset] of Object.entries(ASSETS)) {
    app.get(`/graphiql/${name}`, async (_request, reply) =>
      reply
        .type(asset.type)
        .header('cache-control', 'public, max-age=86400')
        .send(createReadStream(asset.file)),
    );
  }
}
