-- rotate.lua - wrk script: every request carries one header whose value
-- rotates over the lines of a file (tokens, Basic credentials, ...), so a
-- cache is measured over a realistic population, not one hot key.
--
--   wrk -t2 -c32 -d5s -s bench/rotate.lua URL -- FILE HEADER-NAME
--
-- Requests are formatted once in init(), so rows differ only by the header.

local counter = 0
local threads = {}

-- Numbers the threads so each starts at its own offset in the file.
function setup(thread)
    thread:set("thread_id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0

-- Reads the values and pre-formats one request per value.
function init(args)
    local file, name = args[1], args[2]
    for line in io.lines(file) do
        if #line > 0 then
            n = n + 1
            reqs[n] = wrk.format(nil, nil, { [name] = line })
        end
    end
    assert(n > 0, "no values in " .. file)
    i = ((thread_id or 0) * 7919) % n
end

-- The next request in the rotation.
function request()
    i = i % n + 1
    return reqs[i]
end
