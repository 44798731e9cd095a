# One image for every Connect service; docker-compose.yml picks the service per container.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY libs/crypto/package.json libs/crypto/
COPY libs/db/package.json libs/db/
COPY libs/http/package.json libs/http/
COPY libs/ledger/package.json libs/ledger/
COPY services/command/package.json services/command/
COPY services/query/package.json services/query/
COPY services/projector/package.json services/projector/
COPY cli/package.json cli/
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 CONNECT_DATA_DIR=/data
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
# SERVICE is command, query, projector or notifier.
ENV SERVICE=query
CMD ["sh", "-c", "exec node --import tsx services/${SERVICE}/src/main.ts"]
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
