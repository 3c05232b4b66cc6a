"""Remote workers over NATS (DESIGN §7b): the broker's configuration (`brokerconf`), a
certificate's subject (`certs`), the worker's file (`workerconf`) and the worker (`worker`)."""
