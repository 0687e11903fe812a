//! `netjes-testdns ZONEFILE ADDR`: the test DNS server as a program, for
//! the benchmark scripts that run classic tools (whose resolvers read
//! /etc/resolv.conf) against fixture zones. Not installed with netjes.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: netjes-testdns ZONEFILE ADDR:PORT");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[1]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[1]);
        std::process::exit(4)
    });
    let zone = netjes_dns::zone::Zone::parse(&text).unwrap_or_else(|e| {
        eprintln!("{}: {e:?}", args[1]);
        std::process::exit(4)
    });
    let addr: std::net::SocketAddr = args[2].parse().unwrap_or_else(|_| {
        eprintln!("{}: not ADDR:PORT", args[2]);
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let _dns = netjes_testdns::TestDns::start_on(zone, addr)
            .await
            .unwrap_or_else(|e| {
                eprintln!("cannot bind {addr}: {e}");
                std::process::exit(4)
            });
        eprintln!("serving {} on {addr}", args[1]);
        std::future::pending::<()>().await;
    });
}
