"""`python -m bentham_executor`: run one attempt from the environment."""

from bentham_executor.run import main

if __name__ == "__main__":
    main()
