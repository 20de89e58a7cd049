// ipx (npm, pinned in bench/package.json) serving a folder, for bench/run.sh's
// transform section: node bench/peers/ipx_server.mjs DIR PORT
// Listens on 127.0.0.1 only and prints "listening on http://127.0.0.1:PORT".
import http from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage } from "ipx";

const [dir, port] = process.argv.slice(2);
const ipx = createIPX({ storage: ipxFSStorage({ dir }) });
const server = http.createServer(createIPXNodeServer(ipx));
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
