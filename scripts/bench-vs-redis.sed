# Makes the commands scripts/bench-vs-redis.sh ran readable: process ids become names.
s/--compare-pid [0-9]+/--compare-pid $REDIS_PID/
s/--server-pid ([0-9]+) --pid [0-9]+/--server-pid $SERVER_PID --pid $SERVER_PID/
s/--pid [0-9]+/--pid $HERALD_PID/
s/^env //
