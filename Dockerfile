FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY rest rest
COPY engine engine
COPY workers workers
# The Python client (tradehub tail) ships the GraphQL documents of graphql/operations.
COPY graphql graphql
COPY client client
RUN pip install --no-cache-dir ./client . && useradd --create-home tradehub
USER tradehub
ENV TRADEHUB_HOST=0.0.0.0 TRADEHUB_PORT=8000 TRADEHUB_DATA_DIR=/home/tradehub/data
EXPOSE 8000
CMD ["tradehub", "serve"]
