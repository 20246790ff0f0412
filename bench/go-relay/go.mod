module custos.dev/bench/go-relay

go 1.19
