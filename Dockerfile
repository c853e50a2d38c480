FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir .

ENV DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
CMD ["video-analyzer", "serve", "--host", "0.0.0.0", "--port", "8000"]
