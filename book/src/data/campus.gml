# A campus and two branch offices, made for the book (not a measured graph).
graph [
  directed 0
  node [ id 0 label "campus" host_bandwidth_up "100 Mbit" host_bandwidth_down "100 Mbit" hosts 4 ]
  node [ id 1 label "branch_a" host_bandwidth_up "10 Mbit" host_bandwidth_down "50 Mbit" hosts 1 ]
  node [ id 2 label "branch_b" host_bandwidth_up "10 Mbit" host_bandwidth_down "50 Mbit" hosts 1 ]
  node [ id 3 label "exchange" ]
  edge [ source 0 target 0 latency "1 ms" ]
  edge [ source 1 target 1 latency "1 ms" ]
  edge [ source 2 target 2 latency "1 ms" ]
  edge [ source 0 target 3 latency "5 ms" ]
  edge [ source 1 target 3 latency "12 ms" jitter "1 ms" packet_loss 0.001 ]
  edge [ source 2 target 3 latency "20 ms" jitter "2 ms" packet_loss 0.002 ]
]
