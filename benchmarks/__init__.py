"""Speed benchmarks for tfvae: training and evaluation throughput, time to quality."""
