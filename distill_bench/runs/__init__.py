"""What each command measures, step by step: `bench` (wrk, every target side by side), `demo` (locust, student
then teacher), `capacity` (an open-loop search per target at a p99 objective) and `soak` (locust for minutes).
Each returns a typed result or records raw files for a report."""
