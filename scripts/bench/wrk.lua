-- One wrk script for every load of scripts/bench.sh, steered by the environment:
--
--   BENCH_METHOD     GET (default), PUT, POST
--   BENCH_BODY_FILE  a file whose content is sent as a JSON body (optional)
--   BENCH_TARGETS    a file of lines "PATH_PREFIX<TAB>HEADER: VALUE" (the header may be empty);
--                    requests rotate through the lines, each thread starting at its own line,
--                    so with as many lines as connections each connection mostly keeps to one
--                    identity. Unset: the path of the URL given to wrk, no extra header.
--   BENCH_PATHS      N > 1: each request appends a random one of N paths to the prefix,
--                    formatted with BENCH_PATH_FMT (default "s%05d"); 1: always index 0 (one
--                    hot secret); 0 or unset: the prefix is the whole path.
--   BENCH_NAME       the row name echoed in the result line
--
-- done() prints one line "BENCH_RESULT {json}" with requests, seconds, rps, p50/p99 (ms) and
-- the error counts (non-2xx/3xx answers included), which bench.sh collects.

local method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
local targets_file = os.getenv("BENCH_TARGETS")
local paths = tonumber(os.getenv("BENCH_PATHS") or "0") or 0
local path_fmt = os.getenv("BENCH_PATH_FMT") or "s%05d"
local name = os.getenv("BENCH_NAME") or "run"

local thread_counter = 0

function setup(thread)
   thread_counter = thread_counter + 1
   thread:set("thread_id", thread_counter)
end

local body = nil
local targets = {}
local next_target = 1
local cached = nil

local function read_all(path)
   local f = assert(io.open(path, "rb"))
   local text = f:read("*a")
   f:close()
   return text
end

function init(args)
   if body_file and body_file ~= "" then
      body = read_all(body_file)
   end
   if targets_file and targets_file ~= "" then
      for line in io.lines(targets_file) do
         if line ~= "" then
            local prefix, header = line:match("^([^\t]*)\t?(.*)$")
            local headers = {}
            if body then headers["Content-Type"] = "application/json" end
            if header and header ~= "" then
               local k, v = header:match("^([^:]+):%s*(.*)$")
               headers[k] = v
            end
            targets[#targets + 1] = { prefix = prefix, headers = headers }
         end
      end
   else
      local headers = {}
      if body then headers["Content-Type"] = "application/json" end
      targets[1] = { prefix = wrk.path, headers = headers }
   end
   assert(#targets > 0, "no targets")
   local id = thread_id or 1
   next_target = ((id - 1) % #targets) + 1
   math.randomseed(os.time() * 1000 + id * 7919)
   for _ = 1, 10 do math.random() end
   if #targets == 1 and paths <= 1 then
      local t = targets[1]
      local path = t.prefix
      if paths == 1 then path = path .. string.format(path_fmt, 0) end
      cached = wrk.format(method, path, t.headers, body)
   end
end

function request()
   if cached then return cached end
   local t = targets[next_target]
   next_target = next_target + 1
   if next_target > #targets then next_target = 1 end
   local path = t.prefix
   if paths > 1 then
      path = path .. string.format(path_fmt, math.random(0, paths - 1))
   elseif paths == 1 then
      path = path .. string.format(path_fmt, 0)
   end
   return wrk.format(method, path, t.headers, body)
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"name": "%s", "requests": %d, "seconds": %.3f, "rps": %.1f, ' ..
      '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "errors": {"connect": %d, ' ..
      '"read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
      name, summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.status, e.timeout))
end
